package dev.sohuc.hf;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;

import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/** What every model builder needs: the config, the options, the checkpoint and the module. */
final class ModelContext {
  final HfConfig config;
  final HfOptions options;
  final Safetensors checkpoint;
  final Path checkpointPath;
  final ElementType shapeOnlyType;
  final Module module;
  private final Set<String> dimsUsed = new TreeSet<>();

  ModelContext(HfConfig config, HfOptions options, Safetensors checkpoint, Path checkpointPath,
               ElementType shapeOnlyType, Module module) {
    this.config = config;
    this.options = options;
    this.checkpoint = checkpoint;
    this.checkpointPath = checkpointPath;
    this.shapeOnlyType = shapeOnlyType;
    this.module = module;
  }

  boolean decode() {
    return options.graph() == HfOptions.GraphKind.DECODE;
  }

  boolean raggedDecode() {
    return options.graph() == HfOptions.GraphKind.RAGGED_DECODE;
  }

  boolean step() {
    return options.graph() == HfOptions.GraphKind.STEP;
  }

  /** The dim {@code name}: the bound value from {@code --shape name=N}, or the symbol {@code ?name}. */
  Dim dim(String name) {
    dimsUsed.add(name);
    Long v = options.dimBindings().get(name);
    if (v != null) {
      return Dim.of(v);
    }
    Long k = options.dimMultiples().get(name);
    return k == null ? Dim.symbol(name)
        : Dim.symbol(HfOptions.blocksSymbol(name, k)).times(Dim.of(k));
  }

  /** Rejects bindings of dims the graph does not have, naming the ones it has. */
  void checkBindings() {
    for (String name : options.dimBindings().keySet()) {
      if (!dimsUsed.contains(name)) {
        throw new HfImportException("--shape " + name + "=" + options.dimBindings().get(name)
            + ": this graph has no dim named '" + name + "' (its dims: " + String.join(", ", dimsUsed) + ")");
      }
    }
  }

  static Value arg(String name, List<Dim> dims, ElementType t) {
    return Value.argument(name, new TensorType(dims, t));
  }

  /** Starts {@code @main} with the given arguments. */
  Graph start(List<Value> arguments, String weightPrefix) {
    Function f = new Function("main", arguments);
    module.functions().add(f);
    FunctionBuilder b = new FunctionBuilder(f);
    return new Graph(b, new Weights(module, b, checkpoint, shapeOnlyType, weightPrefix));
  }
}
