package dev.sohuc.isa;

/**
 * One decoded instruction: a sealed interface with one record per table entry, so the emulator
 * can switch over it exhaustively. Record components are the table's operand fields, named and
 * ordered as in {@link InsnTable} (a test checks it); {@code waitTok} and {@code signalTok} come
 * last in every record. Build words with {@link InsnCodec#encode}, records with
 * {@link InsnCodec#decode}.
 */
public sealed interface Insn {

  /** The table entry of this instruction. */
  default InsnDef def() {
    return InsnCodec.defOf(getClass());
  }

  default Engine engine() {
    return def().engine();
  }

  /** The token this instruction waits on before it starts, 0 for none. */
  int waitTok();

  /** The token this instruction signals when it completes, 0 for none. */
  int signalTok();

  /** {@code halt} (CTRL engine); semantics in docs/isa.md. */
  record Halt(int waitTok, int signalTok) implements Insn {}

  /** {@code nop} (CTRL engine); semantics in docs/isa.md. */
  record Nop(int waitTok, int signalTok) implements Insn {}

  /** {@code barrier} (CTRL engine); semantics in docs/isa.md. */
  record Barrier(int waitTok, int signalTok) implements Insn {}

  /** {@code li} (CTRL engine); semantics in docs/isa.md. */
  record Li(int rd, long imm, int waitTok, int signalTok) implements Insn {}

  /** {@code ldarg} (CTRL engine); semantics in docs/isa.md. */
  record Ldarg(int rd, int index, int rs, int waitTok, int signalTok) implements Insn {}

  /** {@code add} (CTRL engine); semantics in docs/isa.md. */
  record Add(int rd, int rs1, int rs2, int waitTok, int signalTok) implements Insn {}

  /** {@code sub} (CTRL engine); semantics in docs/isa.md. */
  record Sub(int rd, int rs1, int rs2, int waitTok, int signalTok) implements Insn {}

  /** {@code mul} (CTRL engine); semantics in docs/isa.md. */
  record Mul(int rd, int rs1, int rs2, int waitTok, int signalTok) implements Insn {}

  /** {@code min} (CTRL engine); semantics in docs/isa.md. */
  record Min(int rd, int rs1, int rs2, int waitTok, int signalTok) implements Insn {}

  /** {@code max} (CTRL engine); semantics in docs/isa.md. */
  record Max(int rd, int rs1, int rs2, int waitTok, int signalTok) implements Insn {}

  /** {@code addi} (CTRL engine); semantics in docs/isa.md. */
  record Addi(int rd, int rs1, int imm, int waitTok, int signalTok) implements Insn {}

  /** {@code muli} (CTRL engine); semantics in docs/isa.md. */
  record Muli(int rd, int rs1, int imm, int waitTok, int signalTok) implements Insn {}

  /** {@code shli} (CTRL engine); semantics in docs/isa.md. */
  record Shli(int rd, int rs1, int shamt, int waitTok, int signalTok) implements Insn {}

  /** {@code shri} (CTRL engine); semantics in docs/isa.md. */
  record Shri(int rd, int rs1, int shamt, int waitTok, int signalTok) implements Insn {}

  /** {@code loop} (CTRL engine); semantics in docs/isa.md. */
  record Loop(int countReg, long countImm, int body, int waitTok, int signalTok) implements Insn {}

  /** {@code fork} (CTRL engine); semantics in docs/isa.md. */
  record Fork(int body, boolean fairDma, int waitTok, int signalTok) implements Insn {}

  /** {@code dma} (DMA engine); semantics in docs/isa.md. */
  record Dma(
      MemSpace dstSpace, int dst, int dstOff, int dstRstride, MemSpace srcSpace, int src,
      int srcOff, int srcRstride, int rowBytes, int rowsReg, int rowsImm, int planesReg,
      int planesImm, int dstPstride, int srcPstride, int waitTok, int signalTok) implements Insn {}

  /** {@code gather} (DMA engine); semantics in docs/isa.md. */
  record Gather(
      MemSpace dstSpace, int dst, int dstOff, int dstRstride, MemSpace srcSpace, int src,
      int srcOff, int srcRstride, int rowBytes, int rowsReg, int rowsImm, int idx, int idxOff,
      int limit, boolean idx64, int waitTok, int signalTok) implements Insn {}

  /** {@code scatter} (DMA engine); semantics in docs/isa.md. */
  record Scatter(
      MemSpace dstSpace, int dst, int dstOff, int dstRstride, int dstIstride, MemSpace srcSpace,
      int src, int srcOff, int srcRstride, int rowBytes, int rowsReg, int rowsImm, int idx,
      int idxOff, boolean idx64, int waitTok, int signalTok) implements Insn {}

  /**
   * A LINK-engine collective: the k-th collective of each chip of its group meets the k-th of
   * the others, whichever of these instructions they are (docs/isa.md, allreduce).
   */
  sealed interface LinkCollective permits Allreduce, BlockCollective {
    /** The group size. */
    int chips();

    /** Moves nothing and meets no other chip: a LINK fence (docs/isa.md). */
    boolean isFence();

    /** The link steps it takes over its group, each paying one interconnect latency. */
    int linkSteps();
  }

  /**
   * A collective over chips blocks of rows x elems elements, one block per chip, rows strided:
   * {@code reducescatter} and {@code allgather}, whose operands are the same.
   */
  sealed interface BlockCollective extends LinkCollective permits Reducescatter, Allgather {
    MemSpace space();

    int dst();

    int dstOff();

    int src();

    int srcOff();

    int elemsReg();

    int elemsImm();

    DType dtype();

    /** This chip's index in its group; below {@link #chips()} in a legal program. */
    int rank();

    /** Rows of one chip's block, as a count: this register plus {@link #rowsImm()}. */
    int rowsReg();

    int rowsImm();

    /** The register holding src's row stride in bytes; r0 means packed rows (elems x esize). */
    int sstride();

    /** The register holding dst's row stride in bytes; r0 means packed rows (elems x esize). */
    int dstride();

    /** No elements or no rows, as the immediate 0 with r0: a LINK fence like allreduce's. */
    @Override
    default boolean isFence() {
      return movesNothing(elemsReg(), elemsImm(), rowsReg(), rowsImm());
    }

    /** One phase of an allreduce: a reduce-scatter, or an all-gather. */
    @Override
    default int linkSteps() {
      return InsnTable.phaseSteps(chips());
    }
  }

  /**
   * The LINK collectives' fence test: no elements or no rows, a count that is the immediate 0
   * with r0, so known without reading a register (docs/isa.md, allreduce).
   */
  private static boolean movesNothing(int elemsReg, long elemsImm, int rowsReg, long rowsImm) {
    return elemsReg == 0 && elemsImm == 0 || rowsReg == 0 && rowsImm == 0;
  }

  /** {@code allreduce} (LINK engine); semantics in docs/isa.md. */
  record Allreduce(
      MemSpace space, int buf, int bufOff, int elemsReg, long elemsImm, DType dtype, int chips,
      int rowsReg, int rowsImm, int stride, int urgent, int waitTok, int signalTok)
      implements Insn, LinkCollective {
    /** No elements or no rows, as the immediate 0 with r0: a LINK fence (docs/isa.md). */
    @Override
    public boolean isFence() {
      return movesNothing(elemsReg, elemsImm, rowsReg, rowsImm);
    }

    @Override
    public int linkSteps() {
      return InsnTable.allreduceSteps(chips);
    }
  }

  /** {@code reducescatter} (LINK engine); semantics in docs/isa.md. */
  record Reducescatter(
      MemSpace space, int dst, int dstOff, int src, int srcOff, int elemsReg, int elemsImm,
      DType dtype, int chips, int rank, int rowsReg, int rowsImm, int sstride, int dstride,
      int waitTok, int signalTok) implements Insn, BlockCollective {}

  /** {@code allgather} (LINK engine); semantics in docs/isa.md. */
  record Allgather(
      MemSpace space, int dst, int dstOff, int src, int srcOff, int elemsReg, int elemsImm,
      DType dtype, int chips, int rank, int rowsReg, int rowsImm, int sstride, int dstride,
      int waitTok, int signalTok) implements Insn, BlockCollective {}

  /** {@code mma} (MXU engine); semantics in docs/isa.md. */
  record Mma(
      int acc, int accOff, int ldc, int a, int aOff, int lda, int b, int bOff, int ldb, int m,
      int n, int kReg, int kImm, DType dtype, boolean ta, boolean tb, boolean accumulate,
      int waitTok, int signalTok) implements Insn {}

  /** {@code vbin} (VPU engine); semantics in docs/isa.md. */
  record Vbin(
      BinOp op, int dst, int dstOff, int dstStride, int a, int aOff, int aStride, int b, int bOff,
      int bStride, int rows, int cols, DType dtype, Bcast bcast, boolean bBf16, int waitTok,
      int signalTok) implements Insn {}

  /** {@code vsel} (VPU engine); semantics in docs/isa.md. */
  record Vsel(
      int dst, int dstOff, int dstStride, int cond, int condOff, int condStride, int a, int aOff,
      int aStride, int b, int bOff, int bStride, int rows, int cols, DType dtype, Bcast aBcast,
      Bcast bBcast, int waitTok, int signalTok) implements Insn {}

  /** {@code vbini} (VPU engine); semantics in docs/isa.md. */
  record Vbini(
      BinOp op, int dst, int dstOff, int dstStride, int a, int aOff, int aStride, float imm,
      int rows, int cols, DType dtype, boolean rev, int waitTok, int signalTok) implements Insn {}

  /** {@code vun} (VPU engine); semantics in docs/isa.md. */
  record Vun(
      UnaryFn fn, int dst, int dstOff, int dstStride, int src, int srcOff, int srcStride, int rows,
      int cols, DType dtype, int waitTok, int signalTok) implements Insn {}

  /** {@code vred} (VPU engine); semantics in docs/isa.md. */
  record Vred(
      RedOp op, int dst, int dstOff, int dstStride, int src, int srcOff, int srcStride, int rows,
      int cols, DType dtype, boolean abs, int waitTok, int signalTok) implements Insn {}

  /** {@code vfill} (VPU engine); semantics in docs/isa.md. */
  record Vfill(
      int dst, int dstOff, int dstStride, float value, int rows, int cols, DType dtype,
      int waitTok, int signalTok) implements Insn {}

  /** {@code softmax} (VPU engine); semantics in docs/isa.md. */
  record Softmax(
      int dst, int dstOff, int dstStride, int src, int srcOff, int srcStride, int rows, int cols,
      DType dtype, float scale, boolean causal, int diag, int valid, int window,
      boolean outBf16, boolean srcAcc, int sums, int waitTok, int signalTok) implements Insn {}

  /** {@code layernorm} (VPU engine); semantics in docs/isa.md. */
  record Layernorm(
      int dst, int dstOff, int src, int srcOff, int stride, int gamma, int gammaOff, int beta,
      int betaOff, int rows, int cols, DType dtype, float eps, int waitTok, int signalTok) implements Insn {}

  /** {@code rmsnorm} (VPU engine); semantics in docs/isa.md. */
  record Rmsnorm(
      int dst, int dstOff, int dstStride, int src, int srcOff, int srcStride, int gamma,
      int gammaOff, int rows, int cols, DType dtype, float eps, boolean outBf16, int waitTok,
      int signalTok) implements Insn {}

  /** {@code rope} (VPU engine); semantics in docs/isa.md. */
  record Rope(
      RopeMode mode, int dst, int dstOff, int dstStride, int src, int srcOff, int srcStride,
      int cos, int cosOff, int sin, int sinOff, int tableStride, int pos, int rows, int cols,
      DType dtype, int group, int waitTok, int signalTok) implements Insn {}

  /** {@code vglu} (VPU engine); semantics in docs/isa.md. */
  record Vglu(
      UnaryFn fn, int dst, int dstOff, int dstStride, int gate, int gateOff, int gateStride,
      int up, int upOff, int upStride, int rows, int cols, DType dtype, int waitTok, int signalTok) implements Insn {}

  /** {@code cvt} (VPU engine); semantics in docs/isa.md. */
  record Cvt(
      int dst, int dstOff, int dstStride, DType dstDtype, int src, int srcOff, int srcStride,
      DType srcDtype, int rows, int cols, ScaleMode mode, float scale, int scaleVec,
      int scaleVecOff, boolean div, int waitTok, int signalTok) implements Insn {}

  /** {@code accrd} (VPU engine); semantics in docs/isa.md. */
  record Accrd(
      int dst, int dstOff, int dstStride, int acc, int accOff, int accStride, int rows, int cols,
      DType dtype, boolean accI32, float scale, Bcast biasBcast, int bias, int biasOff,
      UnaryFn act, boolean biasMul, int waitTok, int signalTok) implements Insn {}

  /** {@code accdq} (VPU engine); semantics in docs/isa.md. */
  record Accdq(
      int dst, int dstOff, int dstStride, int acc, int accOff, int accStride, int rows, int cols,
      DType dtype, int rowScales, int colScales, boolean accI32, float scale, int waitTok,
      int signalTok) implements Insn {}

  /** {@code accglu} (VPU engine); semantics in docs/isa.md. */
  record Accglu(
      UnaryFn fn, int dst, int dstOff, int dstStride, int gate, int gateOff, int up, int upOff,
      int accStride, int rows, int cols, DType dtype, int rowScales, int colScales,
      boolean accI32, int waitTok, int signalTok) implements Insn {}

  /** {@code accwr} (VPU engine); semantics in docs/isa.md. */
  record Accwr(
      int acc, int accOff, int accStride, int src, int srcOff, int srcStride, int rows, int cols,
      DType dtype, int waitTok, int signalTok) implements Insn {}
}
