package dev.sohuc.onnx;

import dev.sohuc.ir.Value;
import dev.sohuc.ir.Weight;
import dev.sohuc.ir.op.DataOp;
import dev.sohuc.ir.op.ElementwiseOp;
import dev.sohuc.ir.op.LinalgOp;
import dev.sohuc.ir.tensor.Tensor;
import dev.sohuc.ir.type.ElementType;
import dev.sohuc.ir.type.TensorType;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;

/**
 * ONNX Runtime's MatMulNBits, the linear layer of 4- and 8-bit block-quantized exports
 * (ONNX Runtime's weight-only quantizer, transformers.js's q4 models, onnxruntime-genai): Y = A
 * times B dequantized, plus the optional bias. B holds, for each of the N output columns, K codes
 * in blocks of block_size packed low bits first, each block with its scale and zero point
 * (w = (code - zero) * scale; the zero point defaults to the middle code, 2^(bits - 1)).
 *
 * <p>B is dequantized when the model is imported, into a weight of A's type laid out [N, K] and
 * transposed for the matmul (the backend lays weights out at load time): sohuc's own quantizer
 * then applies to it as to any weight. Large weights go to a memory-mapped scratch file instead
 * of the heap, so a quantized model of gigabytes imports in bounded memory.
 */
final class MatMulNBits {
  /** Dequantized weights above this many bytes live in a scratch file, not in the heap. */
  static final long INLINE_LIMIT = 64L << 20;
  /** Exports use blocks of 16 to 256; the bound keeps the layout's arithmetic in range. */
  static final long MAX_BLOCK = 1L << 16;

  private MatMulNBits() {}

  static void importNode(OnnxNode n) {
    long k = n.attrInt("K", -1);
    long cols = n.attrInt("N", -1);
    long bits = n.attrInt("bits", -1);
    long block = n.attrInt("block_size", -1);
    if (k < 1 || cols < 1 || k > Integer.MAX_VALUE || cols > Integer.MAX_VALUE) {
      throw n.error("attributes K and N must be given, from 1 to 2^31 - 1, got K " + k + ", N "
          + cols);
    }
    if (bits != 4 && bits != 8) {
      throw n.error(!n.hasAttr("bits") ? "attribute bits must be given (4 or 8)"
          : "bits " + bits + " is not supported (4 or 8)");
    }
    if (block < 16 || block > MAX_BLOCK || Long.bitCount(block) != 1) {
      throw n.error("block_size " + block + " must be a power of two from 16 to " + MAX_BLOCK);
    }
    if (n.has(4)) {
      throw n.error("g_idx (act-order quantization) is not supported");
    }
    TensorType a = n.type(0);
    ElementType t = a.elementType();
    if (t != ElementType.F32 && t != ElementType.F16) {
      throw n.error("A of type " + t + " (f32 or f16)");
    }
    if (a.rank() < 1 || !a.dim(a.rank() - 1).is(k)) {
      throw n.error("A " + a + " does not end in K = " + k);
    }
    long bytes = cols * k * t.sizeBytes();
    if (bytes > Integer.MAX_VALUE) {
      throw n.error("the dequantized weight, " + cols + " x " + k + " " + t + ", is " + bytes
          + " bytes, more than the 2 GiB one weight may hold");
    }
    long blocks = Math.ceilDiv(k, block);
    long blob = block * bits / 8;
    Packing p = new Packing(k, cols, bits, block, blocks, blob);
    ByteBuffer codes = input(n, 1, "B", ElementType.U8, cols * blocks * blob);
    if (!n.type(2).elementType().isFloat()) {
      throw n.error("scales of type " + n.type(2).elementType() + " (a float type)");
    }
    Tensor scales = tensor(n, 2, "scales", n.type(2).elementType(), cols * blocks);
    Zeros zeros = zeros(n, p);
    TensorType wt = TensorType.of(t, cols, k);
    Weight.Data data = bytes <= INLINE_LIMIT ? inline(p, codes, scales, zeros, t, (int) bytes)
        : mapped(n, p, codes, scales, zeros, t, bytes);
    Value rows = n.weightFrom(1, ".dequantized", wt, data);
    Value w = n.temp(new DataOp.Transpose(rows, List.of(1L, 0L)));
    if (!n.has(5)) {
      n.emit(new LinalgOp.MatMul(n.value(0), w));
      return;
    }
    TensorType bias = n.type(5);
    if (bias.rank() != 1 || !bias.dim(0).is(cols)) {
      throw n.error("bias " + bias + " is not a vector of N = " + cols);
    }
    Value y = n.temp(new LinalgOp.MatMul(n.value(0), w));
    n.emit(new ElementwiseOp.Binary(ElementwiseOp.BinaryKind.ADD, y, n.value(5)));
  }

  /** The attributes that lay B out. */
  private record Packing(long k, long cols, long bits, long block, long blocks, long blob) {}

  /** Each block's zero point: packed codes (u8), values of the scales' type, or the default. */
  private record Zeros(ByteBuffer packed, long rowBytes, Tensor values, double fallback) {
    double at(Packing p, long col, long blk) {
      if (values != null) {
        return values.get((int) (col * p.blocks() + blk));
      }
      if (packed == null) {
        return fallback;
      }
      long bit = blk * p.bits();
      int b = packed.get((int) (col * rowBytes + bit / 8)) & 0xff;
      return (b >>> (bit % 8)) & ((1 << p.bits()) - 1);
    }
  }

  private static Zeros zeros(OnnxNode n, Packing p) {
    double fallback = 1 << (p.bits() - 1);
    if (!n.has(3)) {
      return new Zeros(null, 0, null, fallback);
    }
    ElementType zt = n.type(3).elementType();
    if (zt == ElementType.U8) {
      long rowBytes = (p.blocks() * p.bits() + 7) / 8;
      return new Zeros(input(n, 3, "zero_points", zt, p.cols() * rowBytes), rowBytes, null,
          fallback);
    }
    if (zt != n.type(2).elementType()) {
      throw n.error("zero_points of type " + zt + " (u8, or the scales' type " + n.type(2)
          .elementType() + ")");
    }
    return new Zeros(null, 0, tensor(n, 3, "zero_points", zt, p.cols() * p.blocks()), fallback);
  }

  /** A constant input of {@code type} holding exactly {@code count} elements, as bytes. */
  private static ByteBuffer input(OnnxNode n, int i, String role, ElementType type, long count) {
    TensorType it = n.type(i);
    if (it.elementType() != type) {
      throw n.error(role + " of type " + it.elementType() + " (" + type + ")");
    }
    long given = it.staticElementCount().orElseThrow(() -> n.error(role + " " + it
        + " must have a static shape"));
    if (given != count) {
      throw n.error(role + " " + it + " holds " + given + " elements; K, N, bits and block_size "
          + "need " + count);
    }
    return n.bytes(i, role);
  }

  private static Tensor tensor(OnnxNode n, int i, String role, ElementType type, long count) {
    ByteBuffer b = input(n, i, role, type, count);
    return Tensor.fromBytes(type, new long[] {count}, b);
  }

  private static Weight.Data inline(Packing p, ByteBuffer codes, Tensor scales, Zeros zeros,
      ElementType t, int bytes) {
    ByteBuffer out = ByteBuffer.allocate(bytes).order(ByteOrder.LITTLE_ENDIAN);
    dequantize(p, codes, scales, zeros, t, out);
    return new Weight.Data.Inline(out.array());
  }

  /** The weight in a scratch file deleted when sohuc exits, written through a mapping. */
  private static Weight.Data mapped(OnnxNode n, Packing p, ByteBuffer codes, Tensor scales,
      Zeros zeros, ElementType t, long bytes) {
    try {
      Path file = Files.createTempFile("sohuc-matmulnbits-", ".bin");
      file.toFile().deleteOnExit();
      try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ,
          StandardOpenOption.WRITE)) {
        dequantize(p, codes, scales, zeros, t,
            ch.map(FileChannel.MapMode.READ_WRITE, 0, bytes).order(ByteOrder.LITTLE_ENDIAN));
      }
      return new Weight.Data.FileSlice(file, 0, bytes);
    } catch (IOException e) {
      throw n.error("cannot write the dequantized weight to a scratch file: " + e.getMessage());
    } catch (UncheckedIOException e) {
      throw n.error("cannot write the dequantized weight to a scratch file: "
          + e.getCause().getMessage());
    }
  }

  /** Writes B's N rows of K weights, row after row, to {@code out}. */
  private static void dequantize(Packing p, ByteBuffer codes, Tensor scales, Zeros zeros,
      ElementType t, ByteBuffer out) {
    int mask = (1 << p.bits()) - 1;
    for (long col = 0; col < p.cols(); col++) {
      for (long blk = 0; blk < p.blocks(); blk++) {
        double scale = scales.get((int) (col * p.blocks() + blk));
        double zero = zeros.at(p, col, blk);
        long base = (col * p.blocks() + blk) * p.blob();
        long end = Math.min(p.block(), p.k() - blk * p.block());
        for (long i = 0; i < end; i++) {
          long bit = i * p.bits();
          int code = ((codes.get((int) (base + bit / 8)) & 0xff) >>> (bit % 8)) & mask;
          float w = (float) ((code - zero) * scale);
          if (t == ElementType.F32) {
            out.putFloat(w);
          } else {
            out.putShort(Float.floatToFloat16(w));
          }
        }
      }
    }
  }
}
