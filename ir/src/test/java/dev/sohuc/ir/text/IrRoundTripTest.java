package dev.sohuc.ir.text;

import dev.sohuc.ir.Function;
import dev.sohuc.ir.FunctionBuilder;
import dev.sohuc.ir.Location;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Node;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.Attr;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.OpRegistry;
import dev.sohuc.ir.op.SourceOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.Dim;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** print(parse(print(m))) == print(m), and parsing a printout gives back the same module. */
class IrRoundTripTest {
  private static final String RESOURCE = "roundtrip.ir";

  private static Module resource() {
    return IrParser.parse(ErrorCases.load(RESOURCE), RESOURCE);
  }

  @Test
  void printingTheResourceGivesItsTextBack() {
    String text = ErrorCases.load(RESOURCE);
    String withoutComments = text.lines().filter(l -> !l.startsWith("//"))
        .collect(Collectors.joining("\n", "", "\n"));
    assertEquals(withoutComments, IrPrinter.print(IrParser.parse(text, RESOURCE)));
  }

  @Test
  void parsingThePrintoutGivesTheSameModule() {
    Module m = resource();
    assertSameModule(m, IrParser.parse(IrPrinter.print(m), "printed.ir"));
  }

  @Test
  void resourceHasEveryOp() {
    Set<String> used = resource().functions().stream().flatMap(f -> f.body().stream())
        .map(n -> n.op().mnemonic()).collect(Collectors.toSet());
    Set<String> missing = OpRegistry.all().stream().map(OpRegistry.OpDef::mnemonic)
        .filter(m -> !used.contains(m)).collect(Collectors.toCollection(TreeSet::new));
    assertEquals(Set.of(), missing, "ops missing from " + RESOURCE);
  }

  @Test
  void resourceHasEveryAttributeKindAndWeightDataKind() {
    Module m = resource();
    Set<Class<?>> attrKinds = m.main().body().stream().flatMap(n -> n.op().attributes().stream())
        .map(a -> a.value().getClass()).collect(Collectors.toSet());
    assertEquals(Set.of(Attr.class.getPermittedSubclasses()), attrKinds);
    Set<Class<?>> dataKinds = m.weights().values().stream().map(w -> w.data().getClass())
        .collect(Collectors.toSet());
    assertEquals(Set.of(Weight.Data.class.getPermittedSubclasses()), dataKinds);
  }

  @Test
  void floatAttributesKeepTheirBits() {
    long seed = System.nanoTime();
    Random random = new Random(seed);
    List<Double> values = new ArrayList<>(List.of(0.0, -0.0, 3.0, 1e-12, Double.MIN_VALUE, -Double.MAX_VALUE,
        Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY, Double.NaN, 0.1 + 0.2));
    random.doubles(200).forEach(values::add);
    random.longs(200).mapToObj(Double::longBitsToDouble).forEach(values::add);
    Module m = new Module("floats");
    Function f = new Function("main", List.of());
    FunctionBuilder b = new FunctionBuilder(f);
    for (double v : values) {
      b.add(new SourceOp.Fill(List.of(), v, ElementType.F32), Location.UNKNOWN);
    }
    m.functions().add(f);
    String printed = IrPrinter.print(m);
    List<Node> body = IrParser.parse(printed, "floats.ir").main().body();
    for (int i = 0; i < values.size(); i++) {
      assertEquals(new Attr.Float(values.get(i)), body.get(i).op().attributes().get(1).value(),
          "value " + values.get(i) + " (seed " + seed + ")");
    }
    assertEquals(printed, IrPrinter.print(IrParser.parse(printed, "floats.ir")), "seed " + seed);
  }

  @Test
  void denseDataKeepsItsBits() {
    long seed = System.nanoTime();
    Random random = new Random(seed);
    Module m = new Module("dense");
    Function f = new Function("main", List.of());
    FunctionBuilder b = new FunctionBuilder(f);
    List<Tensor> tensors = new ArrayList<>();
    for (ElementType t : ElementType.values()) {
      long[] shape = {3, 4};
      if (t.isFloat()) {
        float[] data = new float[12];
        for (int i = 0; i < data.length; i++) {
          data[i] = Float.intBitsToFloat(random.nextInt());
        }
        tensors.add(Tensor.ofFloats(t, shape, data));
      } else {
        tensors.add(Tensor.ofLongs(t, shape, random.longs(12).toArray()));
      }
    }
    tensors.forEach(t -> b.add(new SourceOp.Constant(t), Location.UNKNOWN));
    m.functions().add(f);
    List<Node> body = IrParser.parse(IrPrinter.print(m), "dense.ir").main().body();
    for (int i = 0; i < tensors.size(); i++) {
      assertEquals(new Attr.Dense(tensors.get(i)), body.get(i).op().attributes().get(0).value(),
          tensors.get(i).elementType() + " (seed " + seed + ")");
    }
  }

  @Test
  void namesThatNeedQuotesRoundTrip() {
    List<String> names = List.of("", "with space", "onnx::MatMul_12", "/encoder/layer.0/Add", "ünïcödé 名前",
        "quote\"back\\slash", "new\nline\ttab\rreturn", "\u0001\u007f", "0", "9lives", "a.b$c");
    Module m = new Module(names.get(4));
    List<Value> args = new ArrayList<>();
    for (String n : names) {
      args.add(Value.argument(n, new TensorType(List.of(Dim.symbol(n), Dim.of(2)), ElementType.F32)));
    }
    Function f = new Function(names.get(5), args);
    FunctionBuilder b = new FunctionBuilder(f);
    List<Function.Output> outputs = new ArrayList<>();
    for (int i = 0; i < names.size(); i++) {
      Node n = b.addNode(new ElementwiseOp.Unary(ElementwiseOp.UnaryKind.EXP, args.get(i)),
          new Location(names.get(i)), List.of(names.get(i) + "'"));
      outputs.add(new Function.Output(names.get(i), n.result()));
      m.addWeight(new Weight(names.get(i), TensorType.of(ElementType.I8, 1),
          new Weight.Data.FileSlice(Path.of("dir with space", "w" + i + ".bin"), i, 1)));
    }
    f.setOutputs(outputs);
    m.functions().add(f);
    String printed = IrPrinter.print(m);
    Module parsed = IrParser.parse(printed, "names.ir");
    assertSameModule(m, parsed);
    assertEquals(printed, IrPrinter.print(parsed));
  }

  @Test
  void tensorTypesNeedNoSpacesAndCommentsAreIgnored() {
    Module m = IrParser.parse("""
        // a comment before the module
        module @m { // and after a brace
          func @f(%a: tensor<2x3xf32>, %b: tensor<?n*2x?n+1xbf16>) -> ("a": tensor<2 x 3 x f32>) {
            return %a // the end
          }
        }
        """, "tight.ir");
    List<Value> args = m.main().arguments();
    assertEquals("tensor<2 x 3 x f32>", args.get(0).type().toString());
    assertEquals("tensor<2*?n x ?n+1 x bf16>", args.get(1).type().toString());
  }

  @Test
  void dimPolynomialsParseInAnyOrder() {
    Module m = IrParser.parse("""
        module @m {
          func @f(%a: tensor<?b*3*?a - 1 + ?a x -?a+?b x ?s-1 x 2*?s x f32>) -> () {
            return
          }
        }
        """, "dims.ir");
    assertEquals("tensor<3*?a*?b+?a-1 x -?a+?b x ?s-1 x 2*?s x f32>", m.main().arguments().get(0).type().toString());
  }

  /** Same weights, functions, nodes (ops, attributes with their exact bits, names, types, locations). */
  static void assertSameModule(Module expected, Module actual) {
    assertEquals(expected.name(), actual.name());
    assertEquals(List.copyOf(expected.weights().values()), List.copyOf(actual.weights().values()));
    assertEquals(expected.functions().size(), actual.functions().size());
    for (int i = 0; i < expected.functions().size(); i++) {
      assertEquals(describe(expected.functions().get(i)), describe(actual.functions().get(i)));
      List<Node> eb = expected.functions().get(i).body();
      List<Node> ab = actual.functions().get(i).body();
      for (int k = 0; k < eb.size(); k++) {
        assertEquals(eb.get(k).op().attributes(), ab.get(k).op().attributes(), eb.get(k).describe());
      }
    }
  }

  /** Everything about a function except attribute values, as comparable text. */
  private static List<String> describe(Function f) {
    List<String> out = new ArrayList<>();
    out.add(f.name() + f.arguments().stream().map(a -> a.name() + ":" + a.type()).toList());
    for (Node n : f.body()) {
      out.add(n.op().mnemonic() + n.op().operands().stream().map(Value::name).toList()
          + n.results().stream().map(r -> r.name() + ":" + r.type()).toList() + n.location());
    }
    f.outputs().forEach(o -> out.add(o.name() + "=" + o.value().name() + ":" + o.value().type()));
    return out;
  }

  @Test
  void everyElementTypeParsesAsAScalarType() {
    String args = Arrays.stream(ElementType.values())
        .map(t -> "%" + t + ": " + TensorType.scalar(t)).collect(Collectors.joining(", "));
    Module m = IrParser.parse("module @m { func @f(" + args + ") -> () { return } }", "types.ir");
    assertEquals(Arrays.stream(ElementType.values()).map(TensorType::scalar).toList(),
        m.main().arguments().stream().map(Value::type).toList());
  }
}
