package dev.sohuc.backend;

import dev.sohuc.ir.Node;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.ElementwiseOp.UnaryKind;
import dev.sohuc.isa.Bcast;
import dev.sohuc.isa.BinOp;
import dev.sohuc.isa.DType;
import dev.sohuc.isa.Insn;
import dev.sohuc.isa.ScaleMode;
import java.util.List;

/**
 * {@code sin} and {@code cos} on the VPU, which has neither (long-context rotary tables, e.g.
 * Llama-3's 8192 x 128, are computed in the graph from the positions):
 *
 * <pre>
 *   k = round(x / 2pi)                  cvt f32 -> i32 with scale 1/2pi (round half to even)
 *   r = x - k*C1 - k*C2 - k*C3          Cody-Waite: C1 has 8 significant bits, so k*C1 is
 *                                       exact for |k| < 2^16 (|x| up to about 4e5)
 *   sin x = r * S(r^2), cos x = C(r^2)  Taylor polynomials on [-pi, pi] to r^19 and r^20
 *                                       (truncation below 1e-9), Horner in f32
 * </pre>
 *
 * Absolute error is a few 1e-7 (rounding of the larger Taylor terms near |r| = pi), against
 * the interpreter's correctly rounded results.
 */
final class TrigLowering {
  private static final double TWO_PI = 2 * Math.PI;
  private static final float C1 = 6.28125f;
  private static final float C2 = (float) (TWO_PI - C1);
  private static final float C3 = (float) (TWO_PI - C1 - (double) C2);
  private static final int SIN_TERMS = 10;   // r, r^3, ..., r^19
  private static final int COS_TERMS = 11;   // 1, r^2, ..., r^20

  private final Lowering l;
  private final Emitter e;

  TrigLowering(Lowering l) {
    this.l = l;
    this.e = l.emitter();
  }

  static boolean claims(ElementwiseOp.UnaryKind k) {
    return k == UnaryKind.SIN || k == UnaryKind.COS;
  }

  /** Taylor coefficients of sin(r)/r or cos(r) in powers of r^2, lowest first. */
  static float[] coefficients(boolean sin) {
    int n = sin ? SIN_TERMS : COS_TERMS;
    float[] c = new float[n];
    double fact = 1;
    int p = sin ? 1 : 0;
    for (int i = 1; i <= p; i++) {
      fact *= i;
    }
    for (int i = 0; i < n; i++) {
      c[i] = (float) ((i % 2 == 0 ? 1 : -1) / fact);
      fact *= (double) (p + 1) * (p + 2);
      p += 2;
    }
    return c;
  }

  void lower(Node n, ElementwiseOp.Unary u) {
    boolean sin = u.kind() == UnaryKind.SIN;
    Lowering.View v = Lowering.view(u.x().type());
    long rowBytes = v.cols() * 4;
    int rows = l.dimReg(v.rows());
    int cols = e.konst(v.cols());
    int rs = e.konst(rowBytes);
    long tile = l.tileRows(8 * rowBytes, v.cols() == 1 ? 1024 : 128);
    int k = e.li(l.sram(tile * rowBytes, "round(x / 2pi)"));
    int r = e.li(l.sram(tile * rowBytes, "reduced argument"));
    int r2 = e.li(l.sram(tile * rowBytes, "r^2"));
    int t = e.li(l.sram(tile * rowBytes, "polynomial"));
    int src = e.li(l.addr(u.x()));
    int dst = e.li(l.addr(n.result()));
    float[] c = coefficients(sin);
    l.rowStream(rows, tile, List.of(new Lowering.In(src, rowBytes, rowBytes)), dst, rowBytes,
        rowBytes, (in, out, rr, st) -> {
          e.emit(new Insn.Cvt(t, 0, rs, DType.I32, in[0], 0, rs, DType.F32, rr, cols,
              ScaleMode.TENSOR, (float) (1 / TWO_PI), 0, 0, false, 0, 0));
          e.cvt(k, rs, DType.F32, t, rs, DType.I32, rr, cols);
          e.vbini(BinOp.MUL, t, rs, k, rs, C1, rr, cols, false);
          e.vbin(BinOp.SUB, r, rs, in[0], rs, t, rs, rr, cols, Bcast.NONE);
          e.vbini(BinOp.MUL, t, rs, k, rs, C2, rr, cols, false);
          e.vbin(BinOp.SUB, r, rs, r, rs, t, rs, rr, cols, Bcast.NONE);
          e.vbini(BinOp.MUL, t, rs, k, rs, C3, rr, cols, false);
          e.vbin(BinOp.SUB, r, rs, r, rs, t, rs, rr, cols, Bcast.NONE);
          e.vbin(BinOp.MUL, r2, rs, r, rs, r, rs, rr, cols, Bcast.NONE);
          // Horner in r^2 from the highest coefficient
          e.vbini(BinOp.MUL, t, rs, r2, rs, c[c.length - 1], rr, cols, false);
          for (int i = c.length - 2; i >= 1; i--) {
            e.vbini(BinOp.ADD, t, rs, t, rs, c[i], rr, cols, false);
            e.vbin(BinOp.MUL, t, rs, t, rs, r2, rs, rr, cols, Bcast.NONE);
          }
          if (sin) {
            e.vbini(BinOp.ADD, t, rs, t, rs, c[0], rr, cols, false);
            e.vbin(BinOp.MUL, out, rs, t, rs, r, rs, rr, cols, Bcast.NONE);
          } else {
            e.vbini(BinOp.ADD, out, rs, t, rs, c[0], rr, cols, false);
          }
        });
    e.free(rows, k, r, r2, t, src, dst);
  }
}
