package dev.sohuc.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.emu.HostTensor;
import dev.sohuc.emu.MachineDescription;
import dev.sohuc.emu.MultiChipTiming;
import dev.sohuc.emu.Options;
import dev.sohuc.ir.Function;
import dev.sohuc.ir.Value;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.text.IrParser;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.container.SohuProgram;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * One small IR function per op form the backend claims, compiled, written, read back and run
 * on the emulator, against the reference interpreter (see {@link EndToEndHarness}). Inputs are
 * seeded random values: f32 in [-1, 1]; i64/i32 arguments named {@code ids*} in [0, 16), named
 * {@code mask*} 0 or 1 (the last {@code pad} columns 0).
 */
class EndToEndOpsTest {
  static final long SEED = 20240611L;
  /**
   * Attention over bf16 K and V: the MXU also rounds the query and the probabilities to bf16
   * (the interpreter keeps them f32), two roundings of 2^-9 relative each.
   */
  static final double BF16_ATTENTION_TOL = 4e-3;

  /** Compiles {@code body} (a func with args and results) once and checks each binding. */
  static void check(String name, String func, List<Map<String, Long>> bindings) {
    check(name, func, BackendOptions.defaults().withBound("s", 300).withBound("p", 300),
        bindings);
  }

  static void check(String name, String func, BackendOptions options,
      List<Map<String, Long>> bindings) {
    check(name, func, options, bindings, EndToEndHarness.DEFAULT_TOL);
  }

  static void check(String name, String func, BackendOptions options,
      List<Map<String, Long>> bindings, double tol) {
    String text = "module @" + name + " {\n" + func + "\n}\n";
    EndToEndHarness.Compiled c = EndToEndHarness.compile(() -> IrParser.parse(text, name + ".ir"),
        options);
    for (Map<String, Long> b : bindings) {
      Random r = new Random(SEED);
      System.out.println(name + " seed " + SEED + " dims " + b);
      c.check(inputs(c, b, r), tol, name + " " + b);
    }
  }

  static void check(String name, String func) {
    check(name, func, List.of(Map.of("s", 5L), Map.of("s", 130L)));
  }

  /** The program of one function's text, compiled as {@link #check} compiles it. */
  static SohuProgram program(String func, BackendOptions options) {
    return EndToEndHarness.compile(() -> IrParser.parse("module @m {\n" + func + "\n}\n", "m.ir"), options)
        .program;
  }

  static Map<String, SohuProgram.Symbol> symbols(SohuProgram p) {
    Map<String, SohuProgram.Symbol> sym = new java.util.HashMap<>();
    p.symbols().forEach(x -> sym.put(x.name(), x));
    return sym;
  }

  static List<Tensor> inputs(EndToEndHarness.Compiled c, Map<String, Long> b, Random r) {
    Function fn = c.reference.main();
    List<Tensor> out = new ArrayList<>();
    for (Value a : fn.arguments()) {
      TensorType t = a.type();
      long[] shape = new long[t.rank()];
      for (int i = 0; i < shape.length; i++) {
        shape[i] = t.dim(i).evaluate(b);
      }
      if (t.elementType() == ElementType.F32) {
        out.add(EndToEndHarness.randomF32(r, 1.0, shape));
      } else if (t.elementType() == ElementType.F16) {
        Tensor f = EndToEndHarness.randomF32(r, 1.0, shape);
        Tensor h = Tensor.zeros(ElementType.F16, shape);
        for (int i = 0; i < f.size(); i++) {
          h.set(i, f.get(i));
        }
        out.add(h);
      } else {
        int n = Tensor.checkedSize(shape);
        long[] v = new long[n];
        long cols = shape.length == 0 ? 1 : shape[shape.length - 1];
        for (int i = 0; i < n; i++) {
          if (a.name().startsWith("mask")) {
            v[i] = (i % cols) >= cols - b.getOrDefault("pad", 0L) ? 0 : 1;
          } else if (a.name().startsWith("lens")) {
            // past lengths: each leaves room for the s new positions in p
            v[i] = r.nextInt((int) (b.get("p") - b.get("s") + 1));
          } else if (t.elementType() == ElementType.BOOL) {
            v[i] = r.nextInt(2);
          } else {
            v[i] = r.nextInt(16);
          }
        }
        out.add(Tensor.ofLongs(t.elementType(), shape, v));
      }
    }
    return out;
  }

  // ---- elementwise ----------------------------------------------------------------------

  @Test
  void unaryFunctions() {
    check("unary", """
        func @main(%x: tensor<1 x ?s x 24 x f32>) -> ("a": tensor<1 x ?s x 24 x f32>, "b": tensor<1 x ?s x 24 x f32>, "c": tensor<1 x ?s x 24 x f32>, "d": tensor<1 x ?s x 24 x f32>) {
          %a = tanh %x : tensor<1 x ?s x 24 x f32>
          %e = exp %x : tensor<1 x ?s x 24 x f32>
          %b = sigmoid %e : tensor<1 x ?s x 24 x f32>
          %n = neg %x : tensor<1 x ?s x 24 x f32>
          %c = relu %n : tensor<1 x ?s x 24 x f32>
          %d = clip %x {min = -0.5, max = 0.25} : tensor<1 x ?s x 24 x f32>
          return %a, %b, %c, %d
        }""");
  }

  @Test
  void binaryBroadcastForms() {
    check("binary", """
        func @main(%x: tensor<1 x ?s x 24 x f32>, %y: tensor<1 x ?s x 24 x f32>, %rv: tensor<24 x f32>, %cv: tensor<1 x ?s x 1 x f32>, %sc: tensor<f32>) -> ("full": tensor<1 x ?s x 24 x f32>, "row": tensor<1 x ?s x 24 x f32>, "col": tensor<1 x ?s x 24 x f32>, "scalar": tensor<1 x ?s x 24 x f32>, "imm": tensor<1 x ?s x 24 x f32>, "rimm": tensor<1 x ?s x 24 x f32>, "rowl": tensor<1 x ?s x 24 x f32>) {
          %full = mul %x, %y : tensor<1 x ?s x 24 x f32>
          %row = sub %x, %rv : tensor<1 x ?s x 24 x f32>
          %col = div %x, %cv : tensor<1 x ?s x 24 x f32>
          %scalar = max %x, %sc : tensor<1 x ?s x 24 x f32>
          %two = constant {value = dense<2.0> : tensor<f32>} : tensor<f32>
          %imm = pow %x, %two : tensor<1 x ?s x 24 x f32>
          %rimm = sub %two, %x : tensor<1 x ?s x 24 x f32>
          %rowl = add %row, %x : tensor<1 x ?s x 24 x f32>
          return %full, %row, %col, %scalar, %imm, %rimm, %rowl
        }""");
  }

  /**
   * Forms the chip runs after Legalization: operands broadcast on both sides or over middle
   * dims (expanded to the result's shape), a where of broadcast operands, a softmax and
   * reductions over a middle axis (on a transposed copy), a log-softmax (decomposed); tiles,
   * pads of each mode (a negative one cropping), a trilu, cumulative sums and a reduction over
   * two axes and over all (empty axes); norm and rope parameters that broadcast; casts from f32 to i32.
   */
  @Test
  void legalizedForms() {
    check("legalized", """
        func @main(%a: tensor<2 x 1 x ?s x 24 x f32>, %b: tensor<1 x 3 x 1 x 24 x f32>, %m: tensor<2 x 1 x 1 x 24 x f32>, %x: tensor<2 x 3 x ?s x 24 x f32>) -> ("both": tensor<2 x 3 x ?s x 24 x f32>, "middle": tensor<2 x 3 x ?s x 24 x f32>, "sel": tensor<2 x 3 x ?s x 24 x f32>, "sm": tensor<2 x 3 x ?s x 24 x f32>, "lsm": tensor<2 x 3 x ?s x 24 x f32>, "rmax": tensor<2 x 1 x ?s x 24 x f32>, "rmean": tensor<3 x ?s x 24 x f32>) {
          %both = add %a, %b : tensor<2 x 3 x ?s x 24 x f32>
          %middle = mul %x, %m : tensor<2 x 3 x ?s x 24 x f32>
          %c = less %a, %b : tensor<2 x 3 x ?s x 24 x bool>
          %sel = where %c, %a, %b : tensor<2 x 3 x ?s x 24 x f32>
          %sm = softmax %x {axis = 1} : tensor<2 x 3 x ?s x 24 x f32>
          %lsm = log_softmax %x {axis = -1} : tensor<2 x 3 x ?s x 24 x f32>
          %rmax = reduce_max %x {axes = [1], keepdims = true} : tensor<2 x 1 x ?s x 24 x f32>
          %rmean = reduce_mean %x {axes = [0], keepdims = false} : tensor<3 x ?s x 24 x f32>
          return %both, %middle, %sel, %sm, %lsm, %rmax, %rmean
        }""", List.of(Map.of("s", 5L), Map.of("s", 130L)));
    check("legalized_static", """
        func @main(%x: tensor<3 x 5 x 24 x f32>) -> ("tile": tensor<6 x 5 x 72 x f32>, "reflect": tensor<3 x 9 x 23 x f32>, "edge": tensor<4 x 5 x 26 x f32>, "constant": tensor<3 x 6 x 24 x f32>, "tril": tensor<3 x 5 x 24 x f32>, "cum": tensor<3 x 5 x 24 x f32>, "rcum": tensor<3 x 5 x 24 x f32>, "two": tensor<5 x f32>, "all": tensor<1 x 1 x 1 x f32>, "vec": tensor<f32>) {
          %tile = tile %x {repeats = [2, 1, 3]} : tensor<6 x 5 x 72 x f32>
          %reflect = pad %x {pads = [0, 2, 0, 0, 2, -1], mode = "reflect", value = 0.0} : tensor<3 x 9 x 23 x f32>
          %edge = pad %x {pads = [1, 0, 2, 0, 0, 0], mode = "edge", value = 0.0} : tensor<4 x 5 x 26 x f32>
          %constant = pad %x {pads = [0, 1, 0, 0, 0, 0], mode = "constant", value = -1.5} : tensor<3 x 6 x 24 x f32>
          %tril = trilu %x {upper = false, k = -1} : tensor<3 x 5 x 24 x f32>
          %cum = cumsum %x {axis = 1, exclusive = false, reverse = false} : tensor<3 x 5 x 24 x f32>
          %rcum = cumsum %x {axis = 2, exclusive = true, reverse = true} : tensor<3 x 5 x 24 x f32>
          %two = reduce_sum %x {axes = [0, 2], keepdims = false} : tensor<5 x f32>
          %all = reduce_mean %x {axes = [], keepdims = true} : tensor<1 x 1 x 1 x f32>
          %v = reshape %two {shape = [5]} : tensor<5 x f32>
          %vec = reduce_max %v {axes = [], keepdims = false} : tensor<f32>
          return %tile, %reflect, %edge, %constant, %tril, %cum, %rcum, %two, %all, %vec
        }""", List.of(Map.of()));
    // parameters that broadcast: fuse-layer-norm's unit gamma (a scalar) where no scale
    // follows, a gamma of one column over two normalized dims, rope tables of one row (or of
    // no row dim) for every position
    check("broadcast_params", """
        func @main(%x: tensor<?s x 4 x 24 x f32>, %g: tensor<24 x f32>, %c: tensor<1 x 1 x 8 x f32>, %t: tensor<8 x f32>) -> ("unit": tensor<?s x 4 x 24 x f32>, "rms": tensor<?s x 4 x 24 x f32>, "two": tensor<?s x 4 x 24 x f32>, "rot": tensor<?s x 4 x 24 x f32>, "rot1": tensor<?s x 4 x 24 x f32>) {
          %one = constant {value = dense<1.0> : tensor<f32>} : tensor<f32>
          %unit = layer_norm %x, %one {axis = 2, eps = 1.0E-5} : tensor<?s x 4 x 24 x f32>
          %half = constant {value = dense<[0.5]> : tensor<1 x f32>} : tensor<1 x f32>
          %rms = rms_norm %x, %half {eps = 1.0E-6, gamma_offset = 0.0} : tensor<?s x 4 x 24 x f32>
          %two = layer_norm %x, %g, %half {axis = 1, eps = 1.0E-5} : tensor<?s x 4 x 24 x f32>
          %rot = rope %x, %c, %c {style = "rotate_half"} : tensor<?s x 4 x 24 x f32>
          %rot1 = rope %x, %t, %t {style = "rotate_half"} : tensor<?s x 4 x 24 x f32>
          return %unit, %rms, %two, %rot, %rot1
        }""", List.of(Map.of("s", 3L)));
    // casts to i32 truncate toward zero: halves, whole numbers, both signs, past 2^22
    check("legalized_cast", """
        func @main(%x: tensor<?s x 12 x f32>) -> ("wide": tensor<?s x 12 x i32>, "ties": tensor<?s x 12 x i32>) {
          %k = constant {value = dense<1000.0> : tensor<f32>} : tensor<f32>
          %big = mul %x, %k : tensor<?s x 12 x f32>
          %wide = cast %big {to = i32} : tensor<?s x 12 x i32>
          %zero = constant {value = dense<0.0> : tensor<f32>} : tensor<f32>
          %z = mul %x, %zero : tensor<?s x 12 x f32>
          %c = constant {value = dense<[-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.0, -7.0, 4194303.5, -4194305.0, 8388609.0, -0.75]> : tensor<12 x f32>} : tensor<12 x f32>
          %v = add %z, %c : tensor<?s x 12 x f32>
          %ties = cast %v {to = i32} : tensor<?s x 12 x i32>
          return %wide, %ties
        }""", List.of(Map.of("s", 3L), Map.of("s", 130L)));
  }

  /** Decode positions past .. past+seq-1 from a range of symbolic length (laid out at its bound). */
  @Test
  void symbolicRangeGivesDecodePositions() {
    check("positions", """
        func @main(%k: tensor<1 x ?p x 4 x f32>, %x: tensor<1 x ?s x 4 x f32>) -> ("pos": tensor<?s x f32>, "y": tensor<1 x ?s x 4 x f32>) {
          %all = range {start = 0, limit = [?p+?s], delta = 1, dtype = f32} : tensor<?p+?s x f32>
          %pos = slice %all {starts = [?p], ends = [?p+?s], axes = [0], steps = [1]} : tensor<?s x f32>
          %col = reshape %pos {shape = [1, ?s, 1]} : tensor<1 x ?s x 1 x f32>
          %y = mul %x, %col : tensor<1 x ?s x 4 x f32>
          return %pos, %y
        }""", List.of(Map.of("p", 7L, "s", 3L), Map.of("p", 290L, "s", 300L)));
  }

  /**
   * A dense mixture of experts' weighted sum: each expert's rows times its routing weight (one
   * number a row) added to the sum. A product only an add reads goes inside that add's stream
   * (never stored); the numbers are the unfused ones.
   */
  @Test
  void aWeightedSumMultipliesInsideItsAdds() {
    String func = """
        func @main(%y0: tensor<1 x ?s x 64 x f32>, %y1: tensor<1 x ?s x 64 x f32>, %y2: tensor<1 x ?s x 64 x f32>, %w0: tensor<1 x ?s x 1 x f32>, %w1: tensor<1 x ?s x 1 x f32>, %w2: tensor<1 x ?s x 1 x f32>) -> ("sum": tensor<1 x ?s x 64 x f32>) {
          %a = mul %y0, %w0 : tensor<1 x ?s x 64 x f32>
          %b = mul %y1, %w1 : tensor<1 x ?s x 64 x f32>
          %ab = add %a, %b : tensor<1 x ?s x 64 x f32>
          %c = mul %w2, %y2 : tensor<1 x ?s x 64 x f32>
          %sum = add %ab, %c : tensor<1 x ?s x 64 x f32>
          return %sum
        }""";
    check("weighted_sum", func, List.of(Map.of("s", 5L), Map.of("s", 300L)));
    // the first add takes one product in (the other is stored for it), the second its one
    List<String> ops = ops(func, BackendOptions.defaults().withBound("s", 300));
    assertTrue(ops.stream().noneMatch(o -> o.startsWith("mul %a") || o.startsWith("mul %c")), ops.toString());
    assertTrue(ops.stream().anyMatch(o -> o.startsWith("mul %b")), ops.toString());
  }

  /** Contiguous runs longer than one DMA row (131071 bytes) are copied as several rows. */
  @Test
  void copiesLongerThanOneDmaRow() {
    check("longcopy", """
        func @main(%x: tensor<3 x 65536 x f32>, %y: tensor<100003 x f32>) -> ("flat": tensor<196608 x f32>, "same": tensor<100003 x f32>) {
          %flat = reshape %x {shape = [196608]} : tensor<196608 x f32>
          return %flat, %y
        }""", List.of(Map.of()));
  }

  @Test
  void activations() {
    check("act", """
        func @main(%x: tensor<1 x ?s x 40 x f32>, %u: tensor<1 x ?s x 40 x f32>) -> ("ge": tensor<1 x ?s x 40 x f32>, "gt": tensor<1 x ?s x 40 x f32>, "si": tensor<1 x ?s x 40 x f32>, "sw": tensor<1 x ?s x 40 x f32>) {
          %ge = gelu %x {approximate = "none"} : tensor<1 x ?s x 40 x f32>
          %gt = gelu %x {approximate = "tanh"} : tensor<1 x ?s x 40 x f32>
          %si = silu %x : tensor<1 x ?s x 40 x f32>
          %sw = swiglu %x, %u : tensor<1 x ?s x 40 x f32>
          return %ge, %gt, %si, %sw
        }""");
  }

  // ---- linear algebra --------------------------------------------------------------------

  @Test
  void matmulLargeK() {
    check("matmul", """
        func @main(%x: tensor<1 x ?s x 300 x f32>, %w: tensor<300 x 200 x f32>) -> ("y": tensor<1 x ?s x 200 x f32>) {
          %y = matmul %x, %w : tensor<1 x ?s x 200 x f32>
          return %y
        }""");
  }

  @Test
  void matmulWithResidentRowsPastTheTileRing() {
    // A resident in SRAM: more row tiles than the ring of ACC/output tiles (66 > 64 at s=8400),
    // four full weight panels streamed ahead, then a tail panel
    check("matmul_ring", """
        func @main(%x: tensor<?s x 24 x f32>, %w: tensor<24 x 600 x f32>) -> ("y": tensor<?s x 600 x f32>) {
          %y = matmul %x, %w : tensor<?s x 600 x f32>
          return %y
        }""", BackendOptions.defaults().withBound("s", 8500),
        List.of(Map.of("s", 8400L), Map.of("s", 1L), Map.of("s", 129L)));
  }

  /**
   * A larger than the SRAM (a 6 MiB target): resident 512 rows at a time, the weights streamed
   * once per block; s = 1300 is two full blocks and a partial one, s = 100 one partial block.
   */
  @Test
  void matmulWithABiggerThanSramGoesInBlocksOfRows(@org.junit.jupiter.api.io.TempDir
      java.nio.file.Path dir) throws java.io.IOException {
    java.nio.file.Path target = dir.resolve("small-sram.json");
    java.nio.file.Files.writeString(target, "{\"name\": \"small-sram\", \"sram\": "
        + "{\"capacity\": {\"value\": 6291456}}}");
    String func = """
        func @main(%x: tensor<?s x 512 x f32>, %w: tensor<512 x 300 x f32>) -> ("y": tensor<?s x 300 x f32>) {
          %y = matmul %x, %w : tensor<?s x 300 x f32>
          return %y
        }""";
    BackendOptions options = BackendOptions.defaults().withTarget(target).withBound("s", 4096);
    check("matmul_blocks", func, options, List.of(Map.of("s", 1300L), Map.of("s", 100L)));
    // HBM traffic: x once, the weights once per block (3), y once
    SohuProgram p = program(func, options);
    long bytes = new dev.sohuc.emu.Emulator(p, dev.sohuc.emu.MachineDescription.defaultTarget(),
        dev.sohuc.emu.Options.defaults()).runTiming(Map.of("s", 1300L)).hbmBytes();
    assertEquals(1300 * 512 * 4 + 3 * 512 * 300 * 4 + 1300 * 300 * 4, bytes);
  }

  /**
   * Compiles {@code text} (its all_reduce is %sum) at the bound {@code s}, checks that its
   * allreduces sum rows of {@code widths} elements, and runs it at each of {@code rows}
   * against the interpreter.
   */
  static void sumsOnTheLink(String text, long s, List<Long> widths, long... rows) {
    EndToEndHarness.Compiled c = EndToEndHarness.compile(() -> IrParser.parse(text, "tp.ir"),
        BackendOptions.defaults().withBound("s", s));
    assertEquals(widths, EndToEndHarness.linkSums(c));
    for (long n : rows) {
      Random r = new Random(SEED + n);
      c.check(inputs(c, Map.of("s", n), r), EndToEndHarness.DEFAULT_TOL, "tp s=" + n);
    }
  }

  /**
   * A row-parallel f32 matmul followed by its all_reduce (a group of one: the functional
   * emulator runs one chip): on the resident ring each finished weight panel is summed on the
   * link inside the matmul's panel loop, one allreduce for the full panels (in the loop) and
   * one for the 44-column tail, over every row at the result's row stride.
   */
  @Test
  void matmulSumsEachPanelOnTheLink() {
    String text = """
        module @tp {
        func @main(%x: tensor<?s x 24 x f32>, %w: tensor<24 x 300 x f32>, %r: tensor<?s x 300 x f32>) -> ("y": tensor<?s x 300 x f32>) {
          %p = matmul %x, %w : tensor<?s x 300 x f32>
          %sum = all_reduce %p {chips = 1} : tensor<?s x 300 x f32>
          %y = add %r, %sum : tensor<?s x 300 x f32>
          return %y
        }
        }
        """;
    sumsOnTheLink(text, 300, List.of(128L, 44L), 1, 129, 300);
  }

  /**
   * Sequence parallelism's pattern in a group of one (the functional emulator runs one chip):
   * a matmul's sums reduce-scattered, the residual added and normalized on the chip's rows, the
   * bf16 rows all-gathered for the next matmul. The matmul's scatter goes panel by panel in its
   * loop (a reducescatter for the 128-column panel, one for the 72-column tail); the gather and
   * a scatter of an add's result are one instruction each; each collective ends with a LINK
   * fence. The numbers are the interpreter's (up to the bf16 rounding below).
   */
  @Test
  void reduceScatterAndAllGatherRunOnTheLink() {
    String text = """
        module @sp {
        func @main(%x: tensor<1 x ?s x 24 x f32>, %w: tensor<24 x 200 x f32>, %r: tensor<1 x ?s x 200 x f32>, %g: tensor<200 x f32>, %w2: tensor<200 x 130 x f32>) -> ("y": tensor<1 x ?s x 130 x f32>, "h": tensor<1 x ?s x 200 x f32>, "hs": tensor<1 x ?s x 200 x f32>) {
          %p = matmul %x, %w : tensor<1 x ?s x 200 x f32>
          %part = reduce_scatter %p {chips = 1, rank = 0, axis = 1} : tensor<1 x ?s x 200 x f32>
          %h = add %r, %part : tensor<1 x ?s x 200 x f32>
          %n = rms_norm %h, %g {eps = 1.0E-5, gamma_offset = 0.0} : tensor<1 x ?s x 200 x f32>
          %nb = cast %n {to = bf16} : tensor<1 x ?s x 200 x bf16>
          %all = all_gather %nb {chips = 1, rank = 0, axis = 1} : tensor<1 x ?s x 200 x bf16>
          %nf = cast %all {to = f32} : tensor<1 x ?s x 200 x f32>
          %y = matmul %nf, %w2 : tensor<1 x ?s x 130 x f32>
          %hh = add %h, %h : tensor<1 x ?s x 200 x f32>
          %hs = reduce_scatter %hh {chips = 1, rank = 0, axis = 1} : tensor<1 x ?s x 200 x f32>
          return %y, %h, %hs
        }
        }
        """;
    EndToEndHarness.Compiled c = EndToEndHarness.compile(() -> IrParser.parse(text, "sp.ir"),
        BackendOptions.defaults().withBound("s", 300));
    Map<String, Long> collectives = new java.util.TreeMap<>();
    for (var d : c.program.debug()) {
      var insn = dev.sohuc.isa.InsnCodec.decode(c.program.code().get(d.pc()));
      if (insn instanceof dev.sohuc.isa.Insn.LinkCollective l) {
        collectives.merge(insn.getClass().getSimpleName() + (l.isFence() ? " fence" : "") + " in "
            + d.irOp(), 1L, Long::sum);
      }
    }
    assertEquals(Map.of("Allgather in all_gather %all", 1L,
        "Allreduce fence in all_gather %all", 1L,
        "Reducescatter in reduce_scatter %part", 2L,
        "Allreduce fence in reduce_scatter %part", 1L,
        "Reducescatter in reduce_scatter %hs", 1L,
        "Allreduce fence in reduce_scatter %hs", 1L), collectives);
    // 0.02: where the emulator's and the interpreter's f32 norms differ in the last place, the
    // bf16 rounding of a normalized value can go the other way, one bf16 step (2^-8 of ~1)
    // times a weight of ~1 in y
    for (long n : new long[] {1, 7, 129, 300}) {
      c.check(inputs(c, Map.of("s", n), new Random(SEED + n)), 0.02,
          "sp s=" + n);
    }
  }

  /**
   * An all_gather of columns (the vocabulary-parallel logits: [1, rows, cols] to [1, rows,
   * chips x cols]) goes one row at a time, each chip's block of a row landing at its place in
   * it. In a group of one each row is copied (the numbers are the interpreter's, rows 1 to the
   * bound); in a group of four, timed, every chip sends three blocks of every row, one allgather
   * a row.
   */
  @Test
  void anAllGatherOfColumnsGoesRowByRow() {
    String func = """
        func @main(%x: tensor<1 x ?s x 24 x f32>, %w: tensor<24 x COLS x f32>) -> ("logits": tensor<1 x ?s x VOCAB x f32>) {
          %l = matmul %x, %w : tensor<1 x ?s x COLS x f32>
          %all = all_gather %l {chips = CHIPS, rank = RANK, axis = 2} : tensor<1 x ?s x VOCAB x f32>
          return %all
        }
        """;
    check("columns", func.replace("COLS", "40").replace("VOCAB", "40").replace("CHIPS", "1")
        .replace("RANK", "0"), List.of(Map.of("s", 1L), Map.of("s", 7L), Map.of("s", 300L)));
    SohuProgram four = program(func.replace("COLS", "40").replace("VOCAB", "160")
        .replace("CHIPS", "4").replace("RANK", "2"), BackendOptions.defaults().withBound("s", 300));
    MultiChipTiming.Report r = MultiChipTiming.runSymmetric(four, 4,
        MachineDescription.defaultTarget(), Options.defaults(), Map.of("s", 129L));
    assertEquals(129, r.collectives(), "one allgather a row");
    assertEquals(4L * 3 * 129 * 40 * 4, r.linkBytes(), "three blocks of every row, each chip");
  }

  /**
   * A gather of a norm's bf16 rows that only qmatmuls read lands in SRAM (SramCollectives): the
   * norm writes its rows there and stores only the residual sum, the allgather moves them within
   * SRAM, and q and k find x there, their mmas waiting for the link while the weights load. With
   * fp8 the norm also does the per-row quantization after it, writing the rows and their scales
   * to two regions that two allgathers fill; the dynamic_quantize has no code of its own. A
   * second reader of the gathered rows (a cast) keeps the gathers in HBM. The regions are laid
   * out at the rows' bound. The numbers are the interpreter's, with the engines' order shuffled
   * as the tokens allow (the harness's race check), up to one bf16 step of a normalized value
   * (0.02, as above).
   */
  @Test
  void aGatherOnlyQmatmulsReadLandsInSram() {
    for (String type : new String[] {"bf16", "f8e4m3"}) {
      for (boolean alsoCast : new boolean[] {false, true}) {
        boolean fp8 = type.equals("f8e4m3");
        String text = gatheredProjections(type, alsoCast);
        EndToEndHarness.Compiled c = EndToEndHarness.compile(() -> IrParser.parse(text, "sp.ir"),
            BackendOptions.defaults().withBound("s", 300));
        List<dev.sohuc.isa.MemSpace> spaces = new ArrayList<>();
        boolean mxuWaits = false;
        for (var d : c.program.debug()) {
          var insn = dev.sohuc.isa.InsnCodec.decode(c.program.code().get(d.pc()));
          if (insn instanceof dev.sohuc.isa.Insn.Allgather a) {
            spaces.add(a.space());
          }
          // the first qmatmul's mmas wait for the gather (an MXU fence on its token)
          mxuWaits |= d.irOp().equals("qmatmul %q") && insn instanceof dev.sohuc.isa.Insn.Mma m
              && m.waitTok() == Emitter.TOK_SUMMED;
          assertTrue(alsoCast || !d.irOp().startsWith("dynamic_quantize"), d.irOp());
        }
        String label = type + (alsoCast ? " gather also cast" : " gather only for qmatmuls");
        assertEquals(java.util.Collections.nCopies(fp8 ? 2 : 1,
            alsoCast ? dev.sohuc.isa.MemSpace.HBM : dev.sohuc.isa.MemSpace.SRAM), spaces, label);
        assertEquals(!alsoCast, mxuWaits, label);
        for (long n : new long[] {1, 129, 300}) {
          c.check(inputs(c, Map.of("s", n), new Random(SEED + n)), 0.02, label + " s=" + n);
        }
      }
    }
  }

  /** A projection whose bf16 partial sums are reduce-scattered for a norm's residual add. */
  private static final String SCATTERED_PROJECTION = """
        module @sp {
        func @main(%x: tensor<1 x ?s x 256 x f32>, %w: tensor<256 x 384 x f32>, %r: tensor<1 x ?s x 384 x f32>, %g: tensor<384 x f32>) -> ("n": tensor<1 x ?s x 384 x f32>, "h": tensor<1 x ?s x 384 x f32>) {
          %wb = cast %w {to = bf16} : tensor<256 x 384 x bf16>
          %one = constant {value = dense<1.0> : tensor<f32>} : tensor<f32>
          %xb = cast %x {to = bf16} : tensor<1 x ?s x 256 x bf16>
          %p = qmatmul %xb, %wb, %one, %one : tensor<1 x ?s x 384 x f32>
          %pb = cast %p {to = bf16} : tensor<1 x ?s x 384 x bf16>
          %part = reduce_scatter %pb {chips = 1, rank = 0, axis = 1} : tensor<1 x ?s x 384 x bf16>
          %pf = cast %part {to = f32} : tensor<1 x ?s x 384 x f32>
          %h = add %r, %pf : tensor<1 x ?s x 384 x f32>
          %n = rms_norm %h, %g {eps = 1.0E-5, gamma_offset = 0.0} : tensor<1 x ?s x 384 x f32>
          return %n, %h
        }
        }
        """;

  /**
   * On a 2 MiB SRAM the regions of 300 rows of partial sums and their block (450 KiB) leave the
   * qmatmul too little for its output ring: the program is compiled again with the scatter in
   * HBM, says so in a note, and computes the same numbers.
   */
  @Test
  void aScatterWhoseRegionsLeaveTooLittleSramGoesThroughHbm(
      @org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws java.io.IOException {
    BackendOptions options = BackendOptions.defaults().withTarget(sramTarget(dir, 2 << 20))
        .withBound("s", 300);
    CompiledProgram p = SohuBackend.compile(IrParser.parse(SCATTERED_PROJECTION, "sp.ir"),
        options);
    assertTrue(p.notes().stream().anyMatch(n -> n.startsWith("collectives through HBM, not SRAM: ")
        && n.contains("(%p)")), p.notes().toString());
    EndToEndHarness.Compiled c = EndToEndHarness.compile(
        () -> IrParser.parse(SCATTERED_PROJECTION, "sp.ir"), options);
    for (var d : c.program.debug()) {
      if (dev.sohuc.isa.InsnCodec.decode(c.program.code().get(d.pc()))
          instanceof Insn.Reducescatter r) {
        assertEquals(dev.sohuc.isa.MemSpace.HBM, r.space());
      }
    }
    c.check(inputs(c, Map.of("s", 300L), new Random(SEED)), 0.02, "scatter through HBM");
  }

  /**
   * A qmatmul whose bf16 partial sums only a reduce_scatter reads, whose block only a norm's
   * residual add reads, scatters from SRAM (SramCollectives): the qmatmul stores its partial sums
   * into a region instead of HBM, the reducescatters (one a load of panels) move them within
   * SRAM into the block's region, and the norm loads the block from there. The numbers are the
   * interpreter's, with the harness's shuffled-engine race check, up to one bf16 step of a
   * normalized value (0.02, as above).
   */
  @Test
  void aScatterOfPartialSumsOnlyANormReadsRunsInSram() {
    String text = SCATTERED_PROJECTION;
    EndToEndHarness.Compiled c = EndToEndHarness.compile(() -> IrParser.parse(text, "sp.ir"),
        BackendOptions.defaults().withBound("s", 300));
    List<dev.sohuc.isa.MemSpace> scatters = new ArrayList<>();
    // the qmatmul's stores of 128-column bf16 panels, by where they go
    List<dev.sohuc.isa.MemSpace> panelStores = new ArrayList<>();
    long normSramLoads = 0;
    for (var d : c.program.debug()) {
      var insn = dev.sohuc.isa.InsnCodec.decode(c.program.code().get(d.pc()));
      if (insn instanceof Insn.Reducescatter r) {
        scatters.add(r.space());
      }
      if (insn instanceof Insn.Dma dma && d.irOp().equals("qmatmul %p")
          && dma.srcSpace() == dev.sohuc.isa.MemSpace.SRAM && dma.rowBytes() == 128 * 2) {
        panelStores.add(dma.dstSpace());
      }
      normSramLoads += insn instanceof Insn.Dma dma && d.irOp().equals("rms_norm %n")
          && dma.rowBytes() != 0 && dma.srcSpace() == dev.sohuc.isa.MemSpace.SRAM ? 1 : 0;
    }
    assertFalse(scatters.isEmpty());
    assertTrue(scatters.stream().allMatch(sp -> sp == dev.sohuc.isa.MemSpace.SRAM),
        scatters.toString());
    assertFalse(panelStores.isEmpty());
    assertTrue(panelStores.stream().allMatch(sp -> sp == dev.sohuc.isa.MemSpace.SRAM),
        "the partial sums stay in SRAM: " + panelStores);
    assertTrue(normSramLoads > 0, "the norm loads the block from SRAM");
    for (long n : new long[] {1, 129, 300}) {
      c.check(inputs(c, Map.of("s", n), new Random(SEED + n)), 0.02, "scatter in SRAM s=" + n);
    }
  }

  /**
   * Two gathers whose regions are live at once (the second norm and gather come before the first
   * gather's qmatmul) take two regions, one below the other: each qmatmul reads its own rows,
   * as the interpreter's numbers show.
   */
  @Test
  void gathersLiveAtOnceTakeTwoRegions() {
    String text = """
        module @sp {
        func @main(%r: tensor<1 x ?s x 256 x f32>, %d: tensor<1 x ?s x 256 x f32>, %r2: tensor<1 x ?s x 256 x f32>, %d2: tensor<1 x ?s x 256 x f32>, %g: tensor<256 x f32>, %w: tensor<256 x 384 x f32>) -> ("q1": tensor<1 x ?s x 384 x f32>, "q2": tensor<1 x ?s x 384 x f32>, "h1": tensor<1 x ?s x 256 x f32>, "h2": tensor<1 x ?s x 256 x f32>) {
          %wb = cast %w {to = bf16} : tensor<256 x 384 x bf16>
          %one = constant {value = dense<1.0> : tensor<f32>} : tensor<f32>
          %h1 = add %r, %d : tensor<1 x ?s x 256 x f32>
          %n1 = rms_norm %h1, %g {eps = 1.0E-5, gamma_offset = 0.0} : tensor<1 x ?s x 256 x f32>
          %c1 = cast %n1 {to = bf16} : tensor<1 x ?s x 256 x bf16>
          %a1 = all_gather %c1 {chips = 1, rank = 0, axis = 1} : tensor<1 x ?s x 256 x bf16>
          %h2 = add %r2, %d2 : tensor<1 x ?s x 256 x f32>
          %n2 = rms_norm %h2, %g {eps = 1.0E-5, gamma_offset = 0.0} : tensor<1 x ?s x 256 x f32>
          %c2 = cast %n2 {to = bf16} : tensor<1 x ?s x 256 x bf16>
          %a2 = all_gather %c2 {chips = 1, rank = 0, axis = 1} : tensor<1 x ?s x 256 x bf16>
          %q1 = qmatmul %a1, %wb, %one, %one : tensor<1 x ?s x 384 x f32>
          %q2 = qmatmul %a2, %wb, %one, %one : tensor<1 x ?s x 384 x f32>
          return %q1, %q2, %h1, %h2
        }
        }
        """;
    EndToEndHarness.Compiled c = EndToEndHarness.compile(() -> IrParser.parse(text, "sp.ir"),
        BackendOptions.defaults().withBound("s", 300));
    long inSram = c.program.code().stream().map(dev.sohuc.isa.InsnCodec::decode)
        .filter(i -> i instanceof Insn.Allgather a && a.space() == dev.sohuc.isa.MemSpace.SRAM)
        .count();
    assertEquals(2, inSram);
    for (long n : new long[] {1, 300}) {
      c.check(inputs(c, Map.of("s", n), new Random(SEED + n)), 0.02, "two regions s=" + n);
    }
  }

  /**
   * On a 512 KiB SRAM the region of 256 gathered rows (128 KiB, a quarter) leaves the qmatmuls
   * too little for the schedule whose mmas read x in place: the program is compiled again with
   * the gather in HBM, says so in a note, and computes the same numbers.
   */
  @Test
  void aGatherWhoseRegionLeavesTooLittleSramGoesThroughHbm(
      @org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
      throws java.io.IOException {
    java.nio.file.Path target = sramTarget(dir, 512 << 10);
    String text = gatheredProjections("bf16", false);
    BackendOptions options = BackendOptions.defaults().withTarget(target).withBound("s", 256);
    CompiledProgram p = SohuBackend.compile(IrParser.parse(text, "sp.ir"), options);
    assertTrue(p.notes().stream().anyMatch(n -> n.startsWith("collectives through HBM, not SRAM: ")
        && n.contains("(%q)")), p.notes().toString());
    EndToEndHarness.Compiled c = EndToEndHarness.compile(() -> IrParser.parse(text, "sp.ir"),
        options);
    for (var d : c.program.debug()) {
      if (dev.sohuc.isa.InsnCodec.decode(c.program.code().get(d.pc()))
          instanceof dev.sohuc.isa.Insn.Allgather a) {
        assertEquals(dev.sohuc.isa.MemSpace.HBM, a.space());
      }
    }
    c.check(inputs(c, Map.of("s", 200L), new Random(SEED)), 0.02, "gather through HBM");
  }

  /**
   * A residual add and rms_norm whose rows are cast to {@code type} (bf16), or quantized to it
   * per row (f8e4m3), and all-gathered for two qmatmuls, q and k; {@code alsoCast}: a cast to
   * f32 of the gathered rows is returned too.
   */
  private static String gatheredProjections(String type, boolean alsoCast) {
    boolean fp8 = type.equals("f8e4m3");
    String quantize = fp8 ? """
            %nb, %ns = dynamic_quantize %n {dtype = f8e4m3, granularity = "row"} : tensor<1 x ?s x 256 x f8e4m3>, tensor<1 x ?s x 1 x f32>
            %alls = all_gather %ns {chips = 1, rank = 0, axis = 1} : tensor<1 x ?s x 1 x f32>
        """ : """
            %nb = cast %n {to = bf16} : tensor<1 x ?s x 256 x bf16>
        """;
    return """
        module @sp {
        func @main(%r: tensor<1 x ?s x 256 x f32>, %d: tensor<1 x ?s x 256 x f32>, %g: tensor<256 x f32>, %wq: tensor<256 x 384 x f32>, %wk: tensor<256 x 128 x f32>) -> ("q": tensor<1 x ?s x 384 x f32>, "k": tensor<1 x ?s x 128 x f32>, "h": tensor<1 x ?s x 256 x f32>EXTRA_TYPE) {
          %wqb = cast %wq {to = ELEM} : tensor<256 x 384 x ELEM>
          %wkb = cast %wk {to = ELEM} : tensor<256 x 128 x ELEM>
          %one = constant {value = dense<1.0> : tensor<f32>} : tensor<f32>
          %h = add %r, %d : tensor<1 x ?s x 256 x f32>
          %n = rms_norm %h, %g {eps = 1.0E-5, gamma_offset = 0.0} : tensor<1 x ?s x 256 x f32>
        QUANTIZE
          %all = all_gather %nb {chips = 1, rank = 0, axis = 1} : tensor<1 x ?s x 256 x ELEM>
          %q = qmatmul %all, %wqb, XSCALE, %one : tensor<1 x ?s x 384 x f32>
          %k = qmatmul %all, %wkb, XSCALE, %one : tensor<1 x ?s x 128 x f32>EXTRA_OP
          return %q, %k, %hEXTRA_OUT
        }
        }
        """.replace("QUANTIZE", quantize).replace("ELEM", type)
        .replace("XSCALE", fp8 ? "%alls" : "%one")
        .replace("EXTRA_TYPE", alsoCast ? ", \"nf\": tensor<1 x ?s x 256 x f32>" : "")
        .replace("EXTRA_OP", alsoCast
            ? "\n    %nf = cast %all {to = f32} : tensor<1 x ?s x 256 x f32>" : "")
        .replace("EXTRA_OUT", alsoCast ? ", %nf" : "");
  }

  /**
   * Few rows (a decode step's) and a short K: the weight stream bounds these matmuls and a
   * panel's MXU time is small beside a DMA's fixed cost, so each load brings 16 128-column
   * panels (32 full panels in 2 loads, then a 4-column tail): a [K, N] weight with the panels'
   * sums on the link, one allreduce per load, and a transposed [N, K] weight with a bias read
   * per sub-panel.
   */
  @Test
  void matmulsOfFewRowsLoadSeveralPanelsAtOnce() {
    String text = """
        module @wide {
        func @main(%x: tensor<?s x 24 x f32>, %w: tensor<24 x 4100 x f32>, %bt: tensor<4100 x 24 x f32>, %c: tensor<4100 x f32>, %r: tensor<?s x 4100 x f32>) -> ("y": tensor<?s x 4100 x f32>, "g": tensor<?s x 4100 x f32>) {
          %p = matmul %x, %w : tensor<?s x 4100 x f32>
          %sum = all_reduce %p {chips = 1} : tensor<?s x 4100 x f32>
          %y = add %r, %sum : tensor<?s x 4100 x f32>
          %g = gemm %x, %bt, %c {alpha = 0.5, beta = 1.0, trans_a = false, trans_b = true} : tensor<?s x 4100 x f32>
          return %y, %g
        }
        }
        """;
    sumsOnTheLink(text, 100, List.of(2048L, 4L), 1, 5, 100);
  }

  @Test
  void batchedMatmul() {
    check("bmm", """
        func @main(%a: tensor<3 x ?s x 20 x f32>, %b: tensor<3 x 20 x 130 x f32>) -> ("y": tensor<3 x ?s x 130 x f32>) {
          %y = matmul %a, %b : tensor<3 x ?s x 130 x f32>
          return %y
        }""");
  }

  @Test
  void gemmWithBias() {
    check("gemm", """
        func @main(%a: tensor<?s x 33 x f32>, %b: tensor<150 x 33 x f32>, %c: tensor<150 x f32>) -> ("y": tensor<?s x 150 x f32>) {
          %y = gemm %a, %b, %c {alpha = 0.5, beta = 1.0, trans_a = false, trans_b = true} : tensor<?s x 150 x f32>
          return %y
        }""");
  }

  // ---- reductions and norms -------------------------------------------------------------

  @Test
  void softmaxAndReductions() {
    check("red", """
        func @main(%x: tensor<1 x ?s x 50 x f32>) -> ("sm": tensor<1 x ?s x 50 x f32>, "rs": tensor<1 x ?s x 1 x f32>, "rm": tensor<1 x ?s x f32>, "rx": tensor<1 x ?s x 1 x f32>, "rn": tensor<1 x ?s x 1 x f32>) {
          %sm = softmax %x {axis = -1} : tensor<1 x ?s x 50 x f32>
          %rs = reduce_sum %x {axes = [-1], keepdims = true} : tensor<1 x ?s x 1 x f32>
          %rm = reduce_mean %x {axes = [2], keepdims = false} : tensor<1 x ?s x f32>
          %rx = reduce_max %x {axes = [-1], keepdims = true} : tensor<1 x ?s x 1 x f32>
          %rn = reduce_min %x {axes = [-1], keepdims = true} : tensor<1 x ?s x 1 x f32>
          return %sm, %rs, %rm, %rx, %rn
        }""");
  }

  /**
   * Reductions over a symbolic last dim (an attention mask's keys): the rows, of a width known
   * only at run time, in SRAM at their bound, at two widths.
   */
  @Test
  void reductionsOverASymbolicLastDim() {
    check("red_symbolic", """
        func @main(%x: tensor<3 x ?s x f32>) -> ("rs": tensor<3 x f32>, "rx": tensor<3 x 1 x f32>) {
          %rs = reduce_sum %x {axes = [1], keepdims = false} : tensor<3 x f32>
          %rx = reduce_max %x {axes = [-1], keepdims = true} : tensor<3 x 1 x f32>
          return %rs, %rx
        }""");
  }

  /**
   * A model in f16 (an ONNX export in half precision) runs in f32 (widen-half): its f16 input and
   * weight cast where they enter, its f16 output cast back; within f16's rounding of the
   * interpreter's f16 arithmetic.
   */
  @Test
  void anF16ModelRunsInF32() {
    check("f16", """
        func @main(%x: tensor<?s x 48 x f16>, %w: tensor<48 x 32 x f16>) -> ("y": tensor<?s x 32 x f16>, "z": tensor<?s x 32 x f32>) {
          %m = matmul %x, %w : tensor<?s x 32 x f16>
          %y = gelu %m {approximate = "none"} : tensor<?s x 32 x f16>
          %z = cast %y {to = f32} : tensor<?s x 32 x f32>
          return %y, %z
        }""", BackendOptions.defaults().withBound("s", 300), List.of(Map.of("s", 5L), Map.of("s", 130L)), 1e-2);
  }

  @Test
  void norms() {
    check("norms", """
        func @main(%x: tensor<1 x ?s x 48 x f32>, %g: tensor<48 x f32>, %b: tensor<48 x f32>) -> ("ln": tensor<1 x ?s x 48 x f32>, "ln0": tensor<1 x ?s x 48 x f32>, "rms": tensor<1 x ?s x 48 x f32>) {
          %ln = layer_norm %x, %g, %b {axis = -1, eps = 1.0E-12} : tensor<1 x ?s x 48 x f32>
          %ln0 = layer_norm %x, %g {axis = -1, eps = 1.0E-5} : tensor<1 x ?s x 48 x f32>
          %rms = rms_norm %x, %g {eps = 1.0E-6, gamma_offset = 0.0} : tensor<1 x ?s x 48 x f32>
          return %ln, %ln0, %rms
        }""");
  }

  /**
   * A residual add followed by rms_norm lowers as one stream that stores the sum and the norm
   * (the second residual's sum feeds the next add and is an output, the Gemma offset applies).
   */
  @Test
  void residualAddFusedIntoRmsNorm() {
    String func = """
        func @main(%a: tensor<1 x ?s x 48 x f32>, %b: tensor<1 x ?s x 48 x f32>, %g: tensor<48 x f32>) -> ("y": tensor<1 x ?s x 48 x f32>, "y2": tensor<1 x ?s x 48 x f32>, "h2": tensor<1 x ?s x 48 x f32>) {
          %h = add %a, %b : tensor<1 x ?s x 48 x f32>
          %y = rms_norm %h, %g {eps = 1.0E-6, gamma_offset = 0.0} : tensor<1 x ?s x 48 x f32>
          %h2 = add %h, %y : tensor<1 x ?s x 48 x f32>
          %y2 = rms_norm %h2, %g {eps = 1.0E-5, gamma_offset = 1.0} : tensor<1 x ?s x 48 x f32>
          return %y, %y2, %h2
        }""";
    check("addnorm", func);
    // Gemma's final norm in a serving program: the bf16 sum of the chips' partials widened
    // into the add, the offset, and both the sum and the norm stored: the offset is applied to
    // gamma once, in place, so the stream has the registers it needs
    check("addnorm_gemma", """
        func @main(%a: tensor<?b x ?s x 3072 x f32>, %pf: tensor<?b x ?s x 3072 x f32>, %g: tensor<3072 x f32>) -> ("y": tensor<?b x ?s x 3072 x f32>, "h": tensor<?b x ?s x 3072 x f32>) {
          %pb = cast %pf {to = bf16} : tensor<?b x ?s x 3072 x bf16>
          %p = cast %pb {to = f32} : tensor<?b x ?s x 3072 x f32>
          %h = add %a, %p : tensor<?b x ?s x 3072 x f32>
          %y = rms_norm %h, %g {eps = 1.0E-6, gamma_offset = 1.0} : tensor<?b x ?s x 3072 x f32>
          return %y, %h
        }""", BackendOptions.defaults().withBound("s", 300).withBound("b", 2),
        List.of(Map.of("s", 300L, "b", 2L), Map.of("s", 3L, "b", 1L)));
    // the widened partial first: the add reads it as its bf16 b all the same (a + b == b + a);
    // a subtraction from a widened value widens it in SRAM first
    String widenedFirst = """
        func @main(%a: tensor<?s x 3072 x f32>, %pf: tensor<?s x 3072 x f32>, %g: tensor<3072 x f32>) -> ("y": tensor<?s x 3072 x f32>, "d": tensor<?s x 3072 x f32>) {
          %pb = cast %pf {to = bf16} : tensor<?s x 3072 x bf16>
          %p = cast %pb {to = f32} : tensor<?s x 3072 x f32>
          %h = add %p, %a : tensor<?s x 3072 x f32>
          %y = rms_norm %h, %g {eps = 1.0E-6, gamma_offset = 0.0} : tensor<?s x 3072 x f32>
          %qb = cast %a {to = bf16} : tensor<?s x 3072 x bf16>
          %q = cast %qb {to = f32} : tensor<?s x 3072 x f32>
          %d = sub %q, %pf : tensor<?s x 3072 x f32>
          return %y, %d
        }""";
    check("addnorm_widened_first", widenedFirst, BackendOptions.defaults().withBound("s", 300),
        List.of(Map.of("s", 300L)));
    SohuProgram wp = program(widenedFirst, BackendOptions.defaults().withBound("s", 300));
    java.util.function.BiPredicate<String, java.util.function.Predicate<Insn>> has =
        (op, what) -> wp.debug().stream().anyMatch(d -> d.irOp().equals(op)
            && what.test(dev.sohuc.isa.InsnCodec.decode(wp.code().get(d.pc()))));
    java.util.function.Predicate<Insn> bf16B = i -> i instanceof Insn.Vbin v && v.bBf16();
    java.util.function.Predicate<Insn> widening = i -> i instanceof Insn.Cvt c
        && c.srcDtype() == dev.sohuc.isa.DType.BF16;
    assertTrue(has.test("rms_norm %y", bf16B) && !has.test("rms_norm %y", widening),
        "the norm's add reads the partial in bf16, no cvt");
    assertTrue(has.test("sub %d", widening) && !has.test("sub %d", bf16B),
        "the subtraction widens its first operand by a cvt");
    // an intermediate addend read last by the norm: the norm's result takes its place, and rows
    // of 16 KB make 128-row tiles, so s = 130 and 300 stream two and three tiles over it
    check("addnorm_inplace", """
        func @main(%a: tensor<?s x 4096 x f32>, %b: tensor<?s x 4096 x f32>, %g: tensor<4096 x f32>) -> ("z": tensor<?s x 4096 x f32>) {
          %t = mul %a, %a : tensor<?s x 4096 x f32>
          %h = add %t, %b : tensor<?s x 4096 x f32>
          %y = rms_norm %h, %g {eps = 1.0E-6, gamma_offset = 0.0} : tensor<?s x 4096 x f32>
          %z = mul %y, %h : tensor<?s x 4096 x f32>
          return %z
        }""");
    SohuProgram p = program(func, BackendOptions.defaults().withBound("s", 300));
    List<String> ops = p.debug().stream().map(SohuProgram.DebugEntry::irOp).distinct().toList();
    assertTrue(ops.contains("rms_norm %y") && ops.contains("rms_norm %y2"), ops.toString());
    assertFalse(ops.stream().anyMatch(o -> o.startsWith("add ")), ops.toString());
  }

  @Test
  void rope() {
    check("rope", """
        func @main(%x: tensor<1 x 3 x ?s x 16 x f32>, %c: tensor<?s x 8 x f32>, %sn: tensor<?s x 8 x f32>) -> ("y": tensor<1 x 3 x ?s x 16 x f32>) {
          %cos = concat %c, %c {axis = -1} : tensor<?s x 16 x f32>
          %sin = concat %sn, %sn {axis = -1} : tensor<?s x 16 x f32>
          %y = rope %x, %cos, %sin {style = "rotate_half"} : tensor<1 x 3 x ?s x 16 x f32>
          return %y
        }""");
  }

  /**
   * An interleaved rope (GPT-J, ChatGLM: dims 2c and 2c + 1 pair up) whose tables hold each value
   * twice in place, as ONNX Runtime's RotaryEmbedding and GroupQueryAttention widen their caches,
   * runs on the rope instruction (reading every other value of each row), a partial one too; with
   * tables whose pairs differ it is computed by parts.
   */
  @Test
  void interleavedRope() {
    String paired = """
        func @main(%x: tensor<1 x 3 x ?s x 16 x f32>, %c: tensor<?s x 8 x f32>, %sn: tensor<?s x 4 x f32>) -> ("y": tensor<1 x 3 x ?s x 16 x f32>, "part": tensor<1 x 3 x ?s x 16 x f32>) {
          %c1 = reshape %c {shape = [?s, 8, 1]} : tensor<?s x 8 x 1 x f32>
          %c2 = concat %c1, %c1 {axis = -1} : tensor<?s x 8 x 2 x f32>
          %cos = reshape %c2 {shape = [?s, 16]} : tensor<?s x 16 x f32>
          %sin = neg %cos : tensor<?s x 16 x f32>
          %y = rope %x, %cos, %sin {style = "interleaved"} : tensor<1 x 3 x ?s x 16 x f32>
          %s1 = reshape %sn {shape = [?s, 4, 1]} : tensor<?s x 4 x 1 x f32>
          %s2 = concat %s1, %s1 {axis = -1} : tensor<?s x 4 x 2 x f32>
          %ps = reshape %s2 {shape = [?s, 8]} : tensor<?s x 8 x f32>
          %part = rope %x, %ps, %ps {style = "interleaved"} : tensor<1 x 3 x ?s x 16 x f32>
          return %y, %part
        }""";
    check("rope_interleaved", paired);
    BackendOptions bound = BackendOptions.defaults().withBound("s", 300);
    assertTrue(ops(paired, bound).containsAll(List.of("rope %y", "rope %part")), ops(paired, bound).toString());
    String unequal = """
        func @main(%x: tensor<1 x 3 x ?s x 16 x f32>, %c: tensor<?s x 16 x f32>, %sn: tensor<?s x 16 x f32>) -> ("y": tensor<1 x 3 x ?s x 16 x f32>) {
          %y = rope %x, %c, %sn {style = "interleaved"} : tensor<1 x 3 x ?s x 16 x f32>
          return %y
        }""";
    check("rope_interleaved_unequal", unequal);
    assertTrue(ops(unequal, bound).stream().noneMatch(o -> o.startsWith("rope ")), ops(unequal, bound).toString());
  }

  /**
   * Tables the rope instruction cannot take (halves that differ: it reads the first half of a
   * row for both) are computed by parts, a partial rotary's pass-through dims too; tables that
   * are a concat of one value with itself keep the instruction.
   */
  @Test
  void ropeTablesOfUnequalHalvesAreComputedByParts() {
    String unequal = """
        func @main(%x: tensor<1 x 3 x ?s x 16 x f32>, %c: tensor<?s x 16 x f32>, %sn: tensor<?s x 16 x f32>, %pc: tensor<?s x 8 x f32>) -> ("y": tensor<1 x 3 x ?s x 16 x f32>, "part": tensor<1 x 3 x ?s x 16 x f32>) {
          %y = rope %x, %c, %sn {style = "rotate_half"} : tensor<1 x 3 x ?s x 16 x f32>
          %part = rope %x, %pc, %pc {style = "rotate_half"} : tensor<1 x 3 x ?s x 16 x f32>
          return %y, %part
        }""";
    check("rope_unequal", unequal);
    BackendOptions bound = BackendOptions.defaults().withBound("s", 300);
    assertTrue(ops(unequal, bound).stream().noneMatch(o -> o.startsWith("rope ")), ops(unequal, bound).toString());
    String doubled = """
        func @main(%x: tensor<1 x 3 x ?s x 16 x f32>, %c: tensor<?s x 8 x f32>) -> ("y": tensor<1 x 3 x ?s x 16 x f32>) {
          %cos = concat %c, %c {axis = -1} : tensor<?s x 16 x f32>
          %sin = neg %cos : tensor<?s x 16 x f32>
          %y = rope %x, %cos, %sin {style = "rotate_half"} : tensor<1 x 3 x ?s x 16 x f32>
          return %y
        }""";
    assertTrue(ops(doubled, bound).contains("rope %y"), ops(doubled, bound).toString());
  }

  /**
   * Rope over 3 batches of 5 heads on a 96 KiB SRAM: the 15 planes do not fit one stream's
   * tiles, so they go 4 at a time (the last stream 3), each tile of positions in one DMA.
   */
  @Test
  void ropeInStreamsOfPlanes(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
      throws java.io.IOException {
    java.nio.file.Path target = tinySram(dir);
    check("rope_planes", """
        func @main(%x: tensor<?b x 5 x ?s x 16 x f32>, %c: tensor<?s x 8 x f32>, %sn: tensor<?s x 8 x f32>) -> ("y": tensor<?b x 5 x ?s x 16 x f32>) {
          %cos = concat %c, %c {axis = -1} : tensor<?s x 16 x f32>
          %sin = concat %sn, %sn {axis = -1} : tensor<?s x 16 x f32>
          %y = rope %x, %cos, %sin {style = "rotate_half"} : tensor<?b x 5 x ?s x 16 x f32>
          return %y
        }""", BackendOptions.defaults().withTarget(target).withBound("s", 300).withBound("b", 3),
        List.of(Map.of("s", 300L, "b", 3L), Map.of("s", 37L, "b", 2L), Map.of("s", 2L, "b", 1L)));
  }

  /**
   * The same streams of planes, each rounded to bf16 for the cast after the rope (a prompt's
   * keys at a large batch bound): the streams' constants, made inside their loop, are shared
   * there, or the registers run out.
   */
  @Test
  void ropeInStreamsOfPlanesWritesItsBf16Cast(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
      throws java.io.IOException {
    check("rope_planes_bf16", """
        func @main(%x: tensor<?b x 5 x ?s x 16 x f32>, %c: tensor<?s x 8 x f32>, %sn: tensor<?s x 8 x f32>) -> ("y": tensor<?b x 5 x ?s x 16 x bf16>) {
          %cos = concat %c, %c {axis = -1} : tensor<?s x 16 x f32>
          %sin = concat %sn, %sn {axis = -1} : tensor<?s x 16 x f32>
          %r = rope %x, %cos, %sin {style = "rotate_half"} : tensor<?b x 5 x ?s x 16 x f32>
          %y = cast %r {to = bf16} : tensor<?b x 5 x ?s x 16 x bf16>
          return %y
        }""", BackendOptions.defaults().withTarget(tinySram(dir)).withBound("s", 300)
            .withBound("b", 3),
        List.of(Map.of("s", 300L, "b", 3L), Map.of("s", 37L, "b", 2L)), 0x1p-7);
  }

  /** A target of 96 KiB of SRAM, where a stream's planes do not all fit at once. */
  private static java.nio.file.Path tinySram(java.nio.file.Path dir) throws java.io.IOException {
    return sramTarget(dir, 96 << 10);
  }

  /** The default target with {@code bytes} of SRAM. */
  private static java.nio.file.Path sramTarget(java.nio.file.Path dir, long bytes)
      throws java.io.IOException {
    java.nio.file.Path target = dir.resolve("sram-" + bytes + ".json");
    java.nio.file.Files.writeString(target, "{\"name\": \"sram-" + bytes + "\", \"sram\": "
        + "{\"capacity\": {\"value\": " + bytes + "}}}");
    return target;
  }

  /**
   * A rope of 5 heads read from [1, S, 5, 16] through the transpose to [1, 5, S, 16], its
   * result {@code %r}; {@code tail} makes the output {@code %y} of element type {@code out}.
   */
  private static String transposedRope(String out, String tail) {
    return """
        func @main(%x: tensor<1 x ?s x 5 x 16 x f32>, %c: tensor<?s x 8 x f32>, %sn: tensor<?s x 8 x f32>) -> ("y": tensor<1 x 5 x ?s x 16 x OUT>) {
          %cos = concat %c, %c {axis = -1} : tensor<?s x 16 x f32>
          %sin = concat %sn, %sn {axis = -1} : tensor<?s x 16 x f32>
          %xt = transpose %x {perm = [0, 2, 1, 3]} : tensor<1 x 5 x ?s x 16 x f32>
          %r = rope %xt, %cos, %sin {style = "rotate_half"} : tensor<1 x 5 x ?s x 16 x f32>
          TAIL
        }""".replace("OUT", out).replace("TAIL", tail);
  }

  /**
   * A rope reading [1, S, H, D] through the transpose to [1, H, S, D] in front of it: the
   * transpose emits no code of its own. On the 96 KiB SRAM the 5 heads go 4 then 1 a stream.
   */
  @Test
  void ropeReadsThroughATranspose(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
      throws java.io.IOException {
    String func = transposedRope("f32", "return %r");
    for (BackendOptions options : List.of(BackendOptions.defaults().withBound("s", 300),
        BackendOptions.defaults().withTarget(tinySram(dir)).withBound("s", 300))) {
      check("rope_transposed", func, options, List.of(Map.of("s", 300L), Map.of("s", 37L),
          Map.of("s", 1L)));
      assertFalse(ops(func, options).contains("transpose %xt"));
    }
  }

  /**
   * A rope whose only reader is a cast to bf16 (the keys of a bf16 attention) writes the cast
   * itself: no code for the cast. Through a transpose, on the default target and in streams of
   * planes on a 96 KiB SRAM, and for one position (a decode step's rows).
   */
  @Test
  void ropeWritesTheBf16CastAfterIt(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
      throws java.io.IOException {
    String func = transposedRope("bf16", """
        %y = cast %r {to = bf16} : tensor<1 x 5 x ?s x 16 x bf16>
          return %y""");
    for (BackendOptions options : List.of(BackendOptions.defaults().withBound("s", 300),
        BackendOptions.defaults().withTarget(tinySram(dir)).withBound("s", 300),
        BackendOptions.defaults().withBound("s", 1))) {
      // one bf16 step (2^-7 of values up to 2): the reference's f32 rope can differ from the
      // chip's in the last bit, and the cast then round the other way
      check("rope_bf16", func, options, options.boundOf("s") == 1 ? List.of(Map.of("s", 1L))
          : List.of(Map.of("s", 300L), Map.of("s", 37L), Map.of("s", 1L)), 0x1p-7);
      assertFalse(ops(func, options).contains("cast %y"));
    }
  }

  /** The IR ops a function's program has code for. */
  private static List<String> ops(String func, BackendOptions options) {
    return program(func, options).debug().stream().map(SohuProgram.DebugEntry::irOp).distinct()
        .toList();
  }

  // ---- attention ------------------------------------------------------------------------

  /**
   * Head sizes above the MXU's 128 columns (Gemma's 256, and 192): P V runs in blocks of 128
   * output columns. The masked one-tile schedule, the prefetched prefill schedule over f32 and
   * bf16 K and V, and the stacked, pipelined decode schedule.
   */
  @Test
  void attentionWithHeadsWiderThanTheMxu() {
    for (int d : new int[] {256, 192}) {
      // the model's own scale, 1/sqrt(d): bf16 K and V round the scores by 2^-9 of their size
      String scale = "scale = " + 1 / Math.sqrt(d);
      String q = "tensor<?b x 4 x ?s x " + d + " x f32>";
      String kv = "tensor<?b x 2 x ?s x " + d + " x f32>";
      BackendOptions options = BackendOptions.defaults().withBound("s", 200).withBound("b", 2);
      List<Map<String, Long>> dims = List.of(Map.of("s", 200L, "b", 2L),
          Map.of("s", 5L, "b", 1L));
      check("attn_mask_d" + d, "func @main(%q: " + q + ", %k: " + kv + ", %v: " + kv
          + ", %m: tensor<?b x 1 x 1 x ?s x f32>) -> (\"o\": " + q + ") {\n"
          + "  %o = attention %q, %k, %v, %m {" + scale + ", causal = false, window = 0} : " + q
          + "\n  return %o\n}", options, dims);
      for (String kvType : new String[] {"f32", "bf16"}) {
        String kt = kv.replace("f32", kvType);
        check("attn_prefill_d" + d + "_" + kvType, "func @main(%q: " + q + ", %kf: " + kv
            + ", %vf: " + kv + ") -> (\"o\": " + q + ") {\n"
            + "  %k = cast %kf {to = " + kvType + "} : " + kt + "\n"
            + "  %v = cast %vf {to = " + kvType + "} : " + kt + "\n"
            + "  %o = attention %q, %k, %v {" + scale + ", causal = true, window = 0} : " + q
            + "\n  return %o\n}", options, dims,
            kvType.equals("bf16") ? BF16_ATTENTION_TOL : EndToEndHarness.DEFAULT_TOL);
      }
      check("decode_step_d" + d, DECODE_STEP.replace("x 16 x", "x " + d + " x")
          .replace("x 8 x f32>", "x " + d / 2 + " x f32>"), DECODE_BOUNDS,
          List.of(Map.of("s", 1L, "p", 140L, "b", 3L), Map.of("s", 1L, "p", 0L, "b", 4L)));
    }
  }

  @Test
  void attentionGqaWithPaddingMask() {
    check("attn_mask", """
        func @main(%q: tensor<1 x 4 x ?s x 16 x f32>, %k: tensor<1 x 2 x ?s x 16 x f32>, %v: tensor<1 x 2 x ?s x 16 x f32>, %m: tensor<1 x 1 x 1 x ?s x f32>) -> ("o": tensor<1 x 4 x ?s x 16 x f32>) {
          %o = attention %q, %k, %v, %m {scale = 0.25, causal = false, window = 0} : tensor<1 x 4 x ?s x 16 x f32>
          return %o
        }""");
  }

  @Test
  void attentionCausalDecodeWithCache() {
    check("attn_decode", """
        func @main(%q: tensor<1 x 4 x ?s x 16 x f32>, %pk: tensor<1 x 2 x ?p x 16 x f32>, %k: tensor<1 x 2 x ?s x 16 x f32>, %v: tensor<1 x 2 x ?s x 16 x f32>) -> ("o": tensor<1 x 4 x ?s x 16 x f32>, "kc": tensor<1 x 2 x ?p+?s x 16 x f32>) {
          %kc = kv_cache_append %pk, %k : tensor<1 x 2 x ?p+?s x 16 x f32>
          %vc = kv_cache_append %pk, %v : tensor<1 x 2 x ?p+?s x 16 x f32>
          %o = attention %q, %kc, %vc {scale = 0.25, causal = true, window = 0} : tensor<1 x 4 x ?s x 16 x f32>
          return %o, %kc
        }""", List.of(Map.of("s", 1L, "p", 7L), Map.of("s", 5L, "p", 0L),
            Map.of("s", 3L, "p", 140L), Map.of("s", 200L, "p", 0L), Map.of("s", 150L, "p", 20L)));
  }

  /** Attention over bf16 caches appended with new bf16 keys and values. */
  static final String BF16_CACHE_ATTENTION = """
        func @main(%q: tensor<?b x 4 x ?s x 16 x f32>, %pk: tensor<?b x 2 x ?p x 16 x f32>, %pv: tensor<?b x 2 x ?p x 16 x f32>, %k: tensor<?b x 2 x ?s x 16 x f32>, %v: tensor<?b x 2 x ?s x 16 x f32>) -> ("o": tensor<?b x 4 x ?s x 16 x f32>) {
          %pkb = cast %pk {to = bf16} : tensor<?b x 2 x ?p x 16 x bf16>
          %pvb = cast %pv {to = bf16} : tensor<?b x 2 x ?p x 16 x bf16>
          %kb = cast %k {to = bf16} : tensor<?b x 2 x ?s x 16 x bf16>
          %vb = cast %v {to = bf16} : tensor<?b x 2 x ?s x 16 x bf16>
          %kc = kv_cache_append %pkb, %kb : tensor<?b x 2 x ?p+?s x 16 x bf16>
          %vc = kv_cache_append %pvb, %vb : tensor<?b x 2 x ?p+?s x 16 x bf16>
          %o = attention %q, %kc, %vc {scale = 0.25, causal = true, window = 0} : tensor<?b x 4 x ?s x 16 x f32>
          return %o
        }""";

  /**
   * A sliding-window prefill chunk over a bf16 cache, batch symbolic (a Phi-3 or Mistral prompt
   * chunk): the prefetched schedule's loops hold every register they can spare, so the
   * window's size is put in one only around each softmax (held throughout, it left P V none).
   */
  @Test
  void windowedPrefillOverABf16CacheWithASymbolicBatch() {
    check("attn_window_cache", BF16_CACHE_ATTENTION.replace("window = 0", "window = 100"),
        BackendOptions.defaults().withBound("s", 300).withBound("p", 200).withBound("b", 2),
        List.of(Map.of("s", 300L, "p", 200L, "b", 2L),
            Map.of("s", 130L, "p", 7L, "b", 1L), Map.of("s", 5L, "p", 0L, "b", 2L)),
        BF16_ATTENTION_TOL);
  }

  /**
   * A window no shorter than the keys at the bounds masks none (Mistral's 4096 over a shorter
   * context): the program is the windowless one, its softmaxes without a window register.
   */
  @Test
  void aWindowLongerThanTheKeysMasksNothing() {
    String func = BF16_CACHE_ATTENTION.replace("window = 0", "window = 500");
    BackendOptions options = BackendOptions.defaults().withBound("s", 300).withBound("p", 200)
        .withBound("b", 2);
    check("attn_long_window", func, options, List.of(Map.of("s", 300L, "p", 200L, "b", 2L),
        Map.of("s", 5L, "p", 0L, "b", 1L)), BF16_ATTENTION_TOL);
    SohuProgram p = program(func, options);
    List<Insn.Softmax> softmaxes = p.code().stream().map(dev.sohuc.isa.InsnCodec::decode)
        .filter(i -> i instanceof Insn.Softmax).map(i -> (Insn.Softmax) i).toList();
    assertFalse(softmaxes.isEmpty());
    assertTrue(softmaxes.stream().allMatch(x -> x.window() == 0), softmaxes.toString());
  }

  /**
   * A decode step, seq bound 1 as the serving decode program: the [b, s, h, d] -> [b, h, s, d]
   * transpose is an alias, rope reads one table row for all rows, the query heads of a kv head
   * go as one tile, and the batch's kv heads are software-pipelined. Both caches are outputs
   * read only by the attention: appended in place.
   */
  static final String DECODE_STEP = """
      func @main(%qs: tensor<?b x ?s x 4 x 16 x f32>, %c: tensor<?s x 8 x f32>, %sn: tensor<?s x 8 x f32>, %pk: tensor<?b x 2 x ?p x 16 x f32>, %pv: tensor<?b x 2 x ?p x 16 x f32>, %k: tensor<?b x 2 x ?s x 16 x f32>, %v: tensor<?b x 2 x ?s x 16 x f32>) -> ("o": tensor<?b x 4 x ?s x 16 x f32>, "kc": tensor<?b x 2 x ?p+?s x 16 x f32>, "vc": tensor<?b x 2 x ?p+?s x 16 x f32>) {
        %q = transpose %qs {perm = [0, 2, 1, 3]} : tensor<?b x 4 x ?s x 16 x f32>
        %cos = concat %c, %c {axis = -1} : tensor<?s x 16 x f32>
        %sin = concat %sn, %sn {axis = -1} : tensor<?s x 16 x f32>
        %qr = rope %q, %cos, %sin {style = "rotate_half"} : tensor<?b x 4 x ?s x 16 x f32>
        %kc = kv_cache_append %pk, %k : tensor<?b x 2 x ?p+?s x 16 x f32>
        %vc = kv_cache_append %pv, %v : tensor<?b x 2 x ?p+?s x 16 x f32>
        %o = attention %qr, %kc, %vc {scale = 0.25, causal = true, window = 0} : tensor<?b x 4 x ?s x 16 x f32>
        return %o, %kc, %vc
      }""";

  static final BackendOptions DECODE_BOUNDS = BackendOptions.defaults().withBound("s", 1)
      .withBound("p", 300).withBound("b", 4);

  @Test
  void decodeStepWithOneQueryRow() {
    check("decode_step", DECODE_STEP, DECODE_BOUNDS, List.of(Map.of("s", 1L, "p", 7L, "b", 3L),
        Map.of("s", 1L, "p", 140L, "b", 1L), Map.of("s", 1L, "p", 0L, "b", 4L)));
  }

  /**
   * A serving step's decodes, each with its own past length (the argument block's): the new
   * keys and values written at each length into caches read only by the attentions (in place),
   * and the attentions over each sequence's keys: the decode schedule (stacked heads,
   * pipelined), with a window loading each sequence's last keys only.
   */
  static final String RAGGED_STEP = """
      func @main(%q: tensor<?b x 4 x ?s x 16 x f32>, %pk: tensor<?b x 2 x ?p x 16 x f32>, %pv: tensor<?b x 2 x ?p x 16 x f32>, %k: tensor<?b x 2 x ?s x 16 x f32>, %v: tensor<?b x 2 x ?s x 16 x f32>, %lens: tensor<?b x i64>) -> ("o": tensor<?b x 4 x ?s x 16 x f32>, "w": tensor<?b x 4 x ?s x 16 x f32>, "kc": tensor<?b x 2 x ?p x 16 x f32>, "vc": tensor<?b x 2 x ?p x 16 x f32>) {
        %kc = kv_cache_write %pk, %k, %lens : tensor<?b x 2 x ?p x 16 x f32>
        %vc = kv_cache_write %pv, %v, %lens : tensor<?b x 2 x ?p x 16 x f32>
        %o = attention %q, %kc, %vc, %lens {scale = 0.25, causal = true, window = 0} : tensor<?b x 4 x ?s x 16 x f32>
        %w = attention %q, %kc, %vc, %lens {scale = 0.25, causal = true, window = 3} : tensor<?b x 4 x ?s x 16 x f32>
        return %o, %w, %kc, %vc
      }""";

  @Test
  void decodesWithTheirOwnPastLengths() {
    check("ragged_step", RAGGED_STEP, DECODE_BOUNDS, List.of(Map.of("s", 1L, "p", 7L, "b", 3L),
        Map.of("s", 1L, "p", 140L, "b", 4L), Map.of("s", 1L, "p", 1L, "b", 2L)));
    // one new position a sequence as a static dim (a serving step's decodes): one scatter writes
    // every sequence's new key (value) rows
    check("ragged_scatter", RAGGED_STEP.replace("?s", "1"), DECODE_BOUNDS,
        List.of(Map.of("s", 1L, "p", 7L, "b", 3L), Map.of("s", 1L, "p", 140L, "b", 4L)));
    // three kv heads a sequence: the pipelined schedule finds a tile's sequence by a multiply
    // and shift, not a shift alone
    check("ragged_three_kv_heads", RAGGED_STEP.replace("?b x 4 x", "?b x 6 x").replace("?b x 2 x", "?b x 3 x"),
        DECODE_BOUNDS, List.of(Map.of("s", 1L, "p", 9L, "b", 4L), Map.of("s", 1L, "p", 130L, "b", 3L)));
    // a kv head per query head (Phi-3): pipelined too, a head a tile
    check("ragged_no_gqa", RAGGED_STEP.replace("?b x 4 x", "?b x 2 x"), DECODE_BOUNDS,
        List.of(Map.of("s", 1L, "p", 7L, "b", 3L), Map.of("s", 1L, "p", 140L, "b", 4L)));
    // both attentions go the pipelined way (a slot's reload waits for its last P V: SLOT)
    SohuProgram p = program(RAGGED_STEP, DECODE_BOUNDS);
    for (String op : List.of("attention %o", "attention %w")) {
      assertTrue(p.debug().stream().anyMatch(d -> d.irOp().equals(op)
          && dev.sohuc.isa.InsnCodec.decode(p.code().get(d.pc())).waitTok() == Emitter.TOK_SLOT), op);
    }
    // several new positions each: the prefill schedules
    check("ragged_chunk", RAGGED_STEP, BackendOptions.defaults().withBound("s", 300)
        .withBound("p", 300).withBound("b", 2), List.of(Map.of("s", 150L, "p", 200L, "b", 2L),
        Map.of("s", 5L, "p", 7L, "b", 1L)));
  }

  /**
   * The written caches are laid out at the bound of p and their outputs share the inputs'
   * addresses; the argument block holds the past lengths after the dims, each below p.
   */
  @Test
  void pastLengthsLiveInTheArgumentBlock() {
    SohuProgram p = program(RAGGED_STEP, DECODE_BOUNDS);
    Map<String, SohuProgram.Symbol> sym = symbols(p);
    for (String[] io : new String[][] {{"pk", "kc"}, {"pv", "vc"}}) {
      assertEquals(sym.get(io[0]).hbmAddress(), sym.get(io[1]).hbmAddress());
      assertEquals(new SohuProgram.Dim.Sym("p", 300), sym.get(io[1]).shape().get(2));
    }
    SohuProgram.ArgSlot lens = p.args().stream().filter(SohuProgram.ArgSlot::isArray).findFirst()
        .orElseThrow();
    assertEquals("lens", lens.name());
    assertEquals(new SohuProgram.ArgSlot.Values(4, "p-s+1"), lens.values());
    assertEquals(p.args().size() - 1, lens.index());
    // a length that leaves no room for the new position is refused at launch
    Map<String, HostTensor> in = new java.util.LinkedHashMap<>();
    for (SohuProgram.Symbol x : p.symbols()) {
      if (x.direction() == SohuProgram.Direction.IN && !x.name().equals("lens")) {
        long[] shape = x.name().startsWith("p") ? new long[] {1, 2, 7, 16} : x.name().equals("q")
            ? new long[] {1, 4, 1, 16} : new long[] {1, 2, 1, 16};
        in.put(x.name(), EndToEndHarness.toHost(Tensor.zeros(ElementType.F32, shape)));
      }
    }
    in.put("lens", EndToEndHarness.toHost(Tensor.ofLongs(ElementType.I64, new long[] {1}, new long[] {7})));
    var emu = new dev.sohuc.emu.Emulator(p, dev.sohuc.emu.MachineDescription.defaultTarget(),
        dev.sohuc.emu.Options.defaults());
    var e = org.junit.jupiter.api.Assertions.assertThrows(dev.sohuc.emu.EmulatorException.class,
        () -> emu.runFunctional(in, Map.of()));
    assertEquals("input lens: element 0 is 7, outside [0, p-s+1) with p-s+1 = 7", e.getMessage());
  }

  /**
   * The same step with several new positions (a prefill chunk after a past): the caches
   * appended in place hold 600 positions a head, more than the run's p + s, and the
   * overlapped prefill attention walks its kv heads that far apart.
   */
  @Test
  void chunkAppendedInPlaceAfterAPast() {
    check("chunk_in_place", DECODE_STEP, BackendOptions.defaults().withBound("s", 300)
        .withBound("p", 300).withBound("b", 2), List.of(Map.of("s", 150L, "p", 20L, "b", 2L),
        Map.of("s", 5L, "p", 7L, "b", 1L), Map.of("s", 300L, "p", 0L, "b", 2L)));
  }

  /**
   * The decode step's caches: each input laid out at the bound of p+s (301 positions), its
   * output at the same address, and the append writes only the new positions: the step's HBM
   * traffic has the caches' new rows, not copies of them.
   */
  @Test
  void kvCachesAreAppendedInPlace() {
    SohuProgram p = program(DECODE_STEP, DECODE_BOUNDS);
    Map<String, SohuProgram.Symbol> sym = symbols(p);
    for (String[] io : new String[][] {{"pk", "kc"}, {"pv", "vc"}}) {
      assertEquals(sym.get(io[0]).hbmAddress(), sym.get(io[1]).hbmAddress());
      assertEquals(new SohuProgram.Dim.Sym("p", 301), sym.get(io[0]).shape().get(2));
      assertEquals(new SohuProgram.Dim.Sym("p+s", 301), sym.get(io[1]).shape().get(2));
      assertEquals(4 * 2 * 301 * 16 * 4, sym.get(io[0]).byteSize());
    }
    long bytes = new dev.sohuc.emu.Emulator(p, dev.sohuc.emu.MachineDescription.defaultTarget(),
        dev.sohuc.emu.Options.defaults()).runTiming(Map.of("s", 1L, "p", 280L, "b", 4L))
        .hbmBytes();
    // the attention reads each cache once (281 positions); a copying append would move 280
    // positions of each cache twice more
    long cache = 4 * 2 * 281 * 16 * 4;
    assertTrue(bytes < 3 * cache, bytes + " bytes");
  }

  @Test
  void attentionOverBf16KeysAndValues() {
    check("attn_bf16_mask", """
        func @main(%q: tensor<1 x 4 x ?s x 16 x f32>, %k: tensor<1 x 2 x ?s x 16 x f32>, %v: tensor<1 x 2 x ?s x 16 x f32>, %m: tensor<1 x 1 x 1 x ?s x f32>) -> ("o": tensor<1 x 4 x ?s x 16 x f32>) {
          %kb = cast %k {to = bf16} : tensor<1 x 2 x ?s x 16 x bf16>
          %vb = cast %v {to = bf16} : tensor<1 x 2 x ?s x 16 x bf16>
          %o = attention %q, %kb, %vb, %m {scale = 0.25, causal = false, window = 0} : tensor<1 x 4 x ?s x 16 x f32>
          return %o
        }""", BackendOptions.defaults().withBound("s", 300),
        List.of(Map.of("s", 5L), Map.of("s", 130L)), BF16_ATTENTION_TOL);
    // a bf16 cache: the new keys and values converted, appended, and read as bf16 tiles
    check("attn_bf16_decode", """
        func @main(%q: tensor<1 x 4 x ?s x 16 x f32>, %p: tensor<1 x 2 x ?p x 16 x f32>, %k: tensor<1 x 2 x ?s x 16 x f32>, %v: tensor<1 x 2 x ?s x 16 x f32>) -> ("o": tensor<1 x 4 x ?s x 16 x f32>, "kc": tensor<1 x 2 x ?p+?s x 16 x bf16>) {
          %pb = cast %p {to = bf16} : tensor<1 x 2 x ?p x 16 x bf16>
          %kb = cast %k {to = bf16} : tensor<1 x 2 x ?s x 16 x bf16>
          %vb = cast %v {to = bf16} : tensor<1 x 2 x ?s x 16 x bf16>
          %kc = kv_cache_append %pb, %kb : tensor<1 x 2 x ?p+?s x 16 x bf16>
          %vc = kv_cache_append %pb, %vb : tensor<1 x 2 x ?p+?s x 16 x bf16>
          %o = attention %q, %kc, %vc {scale = 0.25, causal = true, window = 0} : tensor<1 x 4 x ?s x 16 x f32>
          return %o, %kc
        }""", BackendOptions.defaults().withBound("s", 300).withBound("p", 300),
        List.of(Map.of("s", 1L, "p", 7L), Map.of("s", 3L, "p", 140L),
            Map.of("s", 150L, "p", 20L)), BF16_ATTENTION_TOL);
    // one query row per head: the stacked, software-pipelined decode schedule
    check("attn_bf16_step", BF16_CACHE_ATTENTION,
        BackendOptions.defaults().withBound("s", 1).withBound("p", 300).withBound("b", 4),
        List.of(Map.of("s", 1L, "p", 7L, "b", 3L), Map.of("s", 1L, "p", 140L, "b", 1L)),
        BF16_ATTENTION_TOL);
  }

  /**
   * Prefill without a mask: several query tiles per head (300 rows are 128 + 128 + 44), four
   * query heads per kv head and two batches, so the prefetched schedule runs its ring of
   * query slots and its two tiles in flight (both ACC regions and probabilities buffers)
   * across tiles, heads, kv heads and batches; causal, full and sliding-window, over f32 K
   * and V (through a neg, as the bf16 ones through their cast) and bf16.
   */
  @Test
  void prefillAttentionOverManyTilesAndGroupedHeads() {
    String attn = """
          %o = attention %q, %k, %v {scale = 0.25, causal = true, window = 0} : tensor<?b x 8 x ?s x 16 x f32>
          %f = attention %q, %k, %v {scale = 0.25, causal = false, window = 0} : tensor<?b x 8 x ?s x 16 x f32>
          %w = attention %q, %k, %v {scale = 0.25, causal = true, window = 50} : tensor<?b x 8 x ?s x 16 x f32>
          return %o, %f, %w
        }""";
    String sig = """
        func @main(%q: tensor<?b x 8 x ?s x 16 x f32>, %kf: tensor<?b x 2 x ?s x 16 x f32>, %vf: tensor<?b x 2 x ?s x 16 x f32>) -> ("o": tensor<?b x 8 x ?s x 16 x f32>, "f": tensor<?b x 8 x ?s x 16 x f32>, "w": tensor<?b x 8 x ?s x 16 x f32>) {
        """;
    BackendOptions options = BackendOptions.defaults().withBound("s", 300).withBound("b", 2);
    List<Map<String, Long>> bindings = List.of(Map.of("s", 300L, "b", 2L),
        Map.of("s", 5L, "b", 1L), Map.of("s", 129L, "b", 2L));
    check("attn_prefill", sig + """
          %k = neg %kf : tensor<?b x 2 x ?s x 16 x f32>
          %v = neg %vf : tensor<?b x 2 x ?s x 16 x f32>
        """ + attn, options, bindings);
    check("attn_prefill_bf16", sig + """
          %k = cast %kf {to = bf16} : tensor<?b x 2 x ?s x 16 x bf16>
          %v = cast %vf {to = bf16} : tensor<?b x 2 x ?s x 16 x bf16>
        """ + attn, options, bindings, BF16_ATTENTION_TOL);
  }

  /**
   * Keys bounded at 17000: two query tiles' scores (128 x 17024 words each) do not fit ACC,
   * so the tiles of an unmasked attention go one after another.
   */
  @Test
  void prefillAttentionTooLongToOverlapGoesTileByTile() {
    check("attn_long", """
        func @main(%q: tensor<1 x 4 x ?s x 16 x f32>, %k: tensor<1 x 2 x ?s x 16 x f32>, %v: tensor<1 x 2 x ?s x 16 x f32>) -> ("o": tensor<1 x 4 x ?s x 16 x f32>) {
          %o = attention %q, %k, %v {scale = 0.25, causal = true, window = 0} : tensor<1 x 4 x ?s x 16 x f32>
          return %o
        }""", BackendOptions.defaults().withBound("s", 17000),
        List.of(Map.of("s", 5L), Map.of("s", 200L)));
  }

  // ---- data movement --------------------------------------------------------------------

  @Test
  void embeddingAndGather() {
    check("emb", """
        func @main(%t: tensor<16 x 24 x f32>, %ids: tensor<1 x ?s x i64>, %ids32: tensor<?s x i32>) -> ("e": tensor<1 x ?s x 24 x f32>, "g": tensor<?s x 24 x f32>) {
          %e = embedding %t, %ids : tensor<1 x ?s x 24 x f32>
          %g = gather %t, %ids32 {axis = 0} : tensor<?s x 24 x f32>
          return %e, %g
        }""");
  }

  @Test
  void transposeSliceConcatSplit() {
    check("data", """
        func @main(%x: tensor<1 x ?s x 4 x 6 x f32>, %y: tensor<1 x ?s x 4 x 2 x f32>) -> ("t": tensor<1 x 4 x ?s x 6 x f32>, "sl": tensor<1 x ?s x 2 x 3 x f32>, "cat": tensor<1 x ?s x 4 x 8 x f32>, "s0": tensor<1 x ?s x 1 x 6 x f32>, "s1": tensor<1 x ?s x 3 x 6 x f32>, "ex": tensor<2 x ?s x 4 x 2 x f32>) {
          %t = transpose %x {perm = [0, 2, 1, 3]} : tensor<1 x 4 x ?s x 6 x f32>
          %sl = slice %x {starts = [1, 2], ends = [3, 5], axes = [2, 3], steps = [1, 1]} : tensor<1 x ?s x 2 x 3 x f32>
          %cat = concat %x, %y {axis = -1} : tensor<1 x ?s x 4 x 8 x f32>
          %s0, %s1 = split %x {axis = 2, sizes = [1, 3]} : tensor<1 x ?s x 1 x 6 x f32>, tensor<1 x ?s x 3 x 6 x f32>
          %ex = expand %y {shape = [2, ?s, 4, 2]} : tensor<2 x ?s x 4 x 2 x f32>
          return %t, %sl, %cat, %s0, %s1, %ex
        }""");
  }

  /**
   * Slices that keep the first bytes of their operand (a step's prompt rows) read it in place:
   * no code of their own. One that cuts an inner axis, or whose rows are not one run, copies.
   */
  @Test
  void prefixSlicesReadTheirOperandInPlace() {
    String func = """
        func @main(%x: tensor<1 x ?t x 64 x f32>, %h: tensor<1 x ?s x 64 x f32>, %b: tensor<2 x 3 x 8 x f32>) -> ("y": tensor<1 x ?s x 64 x f32>, "w": tensor<1 x ?t x 32 x f32>, "v": tensor<2 x 1 x 8 x f32>) {
          %rows = slice %x {starts = [0], ends = [?s], axes = [1], steps = [1]} : tensor<1 x ?s x 64 x f32>
          %y = mul %rows, %h : tensor<1 x ?s x 64 x f32>
          %cols = slice %x {starts = [0], ends = [32], axes = [2], steps = [1]} : tensor<1 x ?t x 32 x f32>
          %w = mul %cols, %cols : tensor<1 x ?t x 32 x f32>
          %first = slice %b {starts = [0], ends = [1], axes = [1], steps = [1]} : tensor<2 x 1 x 8 x f32>
          %v = mul %first, %first : tensor<2 x 1 x 8 x f32>
          return %y, %w, %v
        }""";
    BackendOptions options = BackendOptions.defaults().withBound("s", 300).withBound("t", 400);
    check("prefix_slices", func, options,
        List.of(Map.of("s", 300L, "t", 400L), Map.of("s", 5L, "t", 130L)));
    List<String> ops = ops(func, options);
    assertFalse(ops.contains("slice %rows"), ops.toString());
    assertTrue(ops.contains("slice %cols") && ops.contains("slice %first"), ops.toString());
  }

  /**
   * Heads transposed back to [1, S, H, D] and merged, that a concat puts before other rows (a
   * step's prompt rows before its decodes'): the concat copies them from the heads, and the
   * transpose emits no code. Concatenated along the merged axis they are not rows: the
   * transpose stays.
   */
  @Test
  void aConcatCopiesMergedHeadsFromTheHeads() {
    String func = """
        func @main(%a: tensor<1 x 4 x ?s x 32 x f32>, %b: tensor<1 x ?t x 128 x f32>, %c: tensor<1 x 4 x ?s x 32 x f32>, %e: tensor<1 x ?s x 8 x f32>) -> ("y": tensor<1 x ?s+?t x 128 x f32>, "z": tensor<1 x ?s x 136 x f32>) {
          %at = transpose %a {perm = [0, 2, 1, 3]} : tensor<1 x ?s x 4 x 32 x f32>
          %am = reshape %at {shape = [1, ?s, 128]} : tensor<1 x ?s x 128 x f32>
          %y = concat %am, %b {axis = 1} : tensor<1 x ?s+?t x 128 x f32>
          %ct = transpose %c {perm = [0, 2, 1, 3]} : tensor<1 x ?s x 4 x 32 x f32>
          %cm = reshape %ct {shape = [1, ?s, 128]} : tensor<1 x ?s x 128 x f32>
          %z = concat %cm, %e {axis = 2} : tensor<1 x ?s x 136 x f32>
          return %y, %z
        }""";
    BackendOptions options = BackendOptions.defaults().withBound("s", 300).withBound("t", 130);
    check("concat_heads", func, options, List.of(Map.of("s", 300L, "t", 130L),
        Map.of("s", 5L, "t", 1L)), 0);
    List<String> ops = ops(func, options);
    assertFalse(ops.contains("transpose %at"), ops.toString());
    assertTrue(ops.contains("transpose %ct"), ops.toString());
  }

  /** Transposes, slices and reshapes move bf16 elements as they move f32 ones. */
  @Test
  void bf16ValuesMoveLikeF32Ones() {
    check("data_bf16", """
        func @main(%x: tensor<1 x ?s x 4 x 6 x f32>) -> ("t": tensor<1 x 4 x ?s x 6 x bf16>, "sl": tensor<1 x ?s x 2 x 3 x f32>, "r": tensor<?s x 24 x f32>) {
          %xb = cast %x {to = bf16} : tensor<1 x ?s x 4 x 6 x bf16>
          %t = transpose %xb {perm = [0, 2, 1, 3]} : tensor<1 x 4 x ?s x 6 x bf16>
          %slb = slice %xb {starts = [1, 2], ends = [3, 5], axes = [2, 3], steps = [1, 1]} : tensor<1 x ?s x 2 x 3 x bf16>
          %sl = cast %slb {to = f32} : tensor<1 x ?s x 2 x 3 x f32>
          %rb = reshape %xb {shape = [?s, 24]} : tensor<?s x 24 x bf16>
          %r = cast %rb {to = f32} : tensor<?s x 24 x f32>
          return %t, %sl, %r
        }""", BackendOptions.defaults().withBound("s", 300),
        List.of(Map.of("s", 5L), Map.of("s", 130L)), 0);
  }

  @Test
  void gatherConstantIndexOnAxis1() {
    check("pool", """
        func @main(%x: tensor<2 x ?s x 24 x f32>) -> ("y": tensor<2 x 24 x f32>, "z": tensor<2 x ?s x 2 x f32>) {
          %i = constant {value = dense<0> : tensor<i64>} : tensor<i64>
          %y = gather %x, %i {axis = 1} : tensor<2 x 24 x f32>
          %j = constant {value = dense<[1, -1]> : tensor<2 x i64>} : tensor<2 x i64>
          %z = gather %x, %j {axis = 2} : tensor<2 x ?s x 2 x f32>
          return %y, %z
        }""", List.of(Map.of("s", 5L)));
  }

  @Test
  void attentionWithSymbolicBatch() {
    check("attn_batch", """
        func @main(%q: tensor<?b x 2 x ?s x 8 x f32>, %k: tensor<?b x 2 x ?s x 8 x f32>, %v: tensor<?b x 2 x ?s x 8 x f32>, %m: tensor<?b x 1 x 1 x ?s x f32>) -> ("o": tensor<?b x 2 x ?s x 8 x f32>) {
          %o = attention %q, %k, %v, %m {scale = 0.35, causal = false, window = 0} : tensor<?b x 2 x ?s x 8 x f32>
          return %o
        }""", List.of(Map.of("s", 5L, "b", 3L), Map.of("s", 130L, "b", 1L)));
  }

  @Test
  void casts() {
    check("cast", """
        func @main(%mask: tensor<1 x ?s x i64>, %ids: tensor<?s x i32>, %b: tensor<?s x bool>) -> ("a": tensor<1 x ?s x f32>, "c": tensor<?s x f32>, "d": tensor<?s x f32>) {
          %a = cast %mask {to = f32} : tensor<1 x ?s x f32>
          %c = cast %ids {to = f32} : tensor<?s x f32>
          %d = cast %b {to = f32} : tensor<?s x f32>
          return %a, %c, %d
        }""", List.of(Map.of("s", 5L, "pad", 2L), Map.of("s", 290L, "pad", 16L)));
  }
}
