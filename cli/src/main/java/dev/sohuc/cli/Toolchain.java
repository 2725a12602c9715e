package dev.sohuc.cli;

import dev.sohuc.backend.BackendException;
import dev.sohuc.backend.BackendOptions;
import dev.sohuc.backend.CompiledProgram;
import dev.sohuc.backend.SohuBackend;
import dev.sohuc.backend.SymbolTypes;
import dev.sohuc.emu.HostTensor;
import dev.sohuc.hf.HfOptions;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.passes.LayoutWeightsPass;
import dev.sohuc.passes.PassManager;
import dev.sohuc.passes.PassPipelines;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;

/**
 * The steps {@code compile}, {@code run} and {@code test} share: import, the default pipeline,
 * the backend, and host tensors to and from ONNX tensors.
 */
final class Toolchain {
  private Toolchain() {}

  /** A model after import and the default pipeline, and its program. */
  record Compiled(Module module, PassManager.Report passes, CompiledProgram program) {}

  /** Imports a model and runs the default pass pipeline on it, verifying after every pass. */
  static PassManager.Report optimize(Module m, Consumer<PassManager> configure) {
    PassManager pm = new PassManager(PassPipelines.defaultPipeline()).verifyEach(true);
    configure.accept(pm);
    return pm.run(m);
  }

  /**
   * The last IR step before the backend, after sharding and quantization (which read weights in
   * their checkpoint layout): weights stored as the code reads them.
   */
  static void layoutWeights(Module m) {
    new PassManager(List.of(new LayoutWeightsPass())).verifyEach(true).run(m);
  }

  /** Lowers an optimized module; a backend error becomes a user error naming the model. */
  static CompiledProgram lower(Module m, Path model, Path target) {
    return lower(m, model, backendOptions(target));
  }

  /**
   * The backend's options for {@code --target}: a symbol given a value by --shape was bound by
   * the importer; others keep the default bound.
   */
  static BackendOptions backendOptions(Path target) {
    return BackendOptions.defaults().withTarget(target);
  }

  static CompiledProgram lower(Module m, Path model, BackendOptions options) {
    try {
      return SohuBackend.compile(m, options);
    } catch (BackendException e) {
      throw new UserException(model + ": " + e.getMessage(), e);
    }
  }

  /** Import, default pipeline and backend in one go (prefill graph for HF checkpoints). */
  static Compiled compile(Path model, ShapeBindings shapes, Path target) {
    Module m = ModelLoader.load(model, shapes, HfOptions.prefill());
    PassManager.Report report = optimize(m, pm -> { });
    layoutWeights(m);
    return new Compiled(m, report, lower(m, model, target));
  }

  /** An emulator output as an ONNX-side tensor. */
  static Tensor toTensor(HostTensor h) {
    return Tensor.fromBytes(SymbolTypes.elementType(h.dtype()), h.shape(),
        ByteBuffer.wrap(h.data()).order(ByteOrder.LITTLE_ENDIAN));
  }
}
