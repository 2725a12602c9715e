package dev.sohuc.isa;

import static dev.sohuc.isa.Cost.Unit.BYTES;
import static dev.sohuc.isa.Cost.Unit.ELEMENTS;
import static dev.sohuc.isa.Cost.Unit.LINK_BYTES;
import static dev.sohuc.isa.Cost.Unit.MACS;
import static dev.sohuc.isa.Cost.Unit.NONE;
import static dev.sohuc.isa.Engine.CTRL;
import static dev.sohuc.isa.Engine.DMA;
import static dev.sohuc.isa.Engine.LINK;
import static dev.sohuc.isa.Engine.MXU;
import static dev.sohuc.isa.Engine.VPU;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * THE instruction table. Every instruction is one entry: opcode, mnemonic, engine, fields (laid
 * out from bit 18 upwards in declaration order; bits 0..7 opcode, 8..12 wait token, 13..17
 * signal token), assembly operands, semantics and cost. The encoder, decoder, assembler,
 * disassembler and docs/isa.md are all derived from this list, and {@link #problems()} checks it.
 */
public final class InsnTable {
  private InsnTable() {}

  private static final String TILE_ROWS = "rows";
  private static final String TILE_COLS = "cols";
  private static final String CHIPS = "chips";
  private static final String CHIPS_DOC =
      "group size: the chips 0 .. chips-1 of the server take part";
  /** How chips meet at the LINK collectives, as their semantics state it. */
  private static final String MEETING = "The k-th LINK collective of each chip (allreduce, "
      + "reducescatter or allgather) meets the k-th of the others, which must be the same "
      + "instruction over as many bytes.";
  /**
   * What reducescatter and allgather share in their semantics: strides, ranks, overlap, time,
   * fence.
   */
  private static final String BLOCK_COLLECTIVE = "S_src and S_dst are the values of the "
      + "sstride and dstride registers, or elems x esize (packed rows) where the register is r0. "
      + "The rank operand, the chip's index in the group, must be below chips (the emulator "
      + "traps otherwise). Every chip's src is read before any dst is written, so the two may "
      + "overlap (in place). Time: each chip sends link bytes = (chips-1) x rows x elems x esize "
      + "(the table's work); it starts when the last chip of the group arrives and occupies the "
      + "LINK queue for 64 + ceil(link bytes / link) cycles, with link = interconnect.bandwidth "
      + "in bytes per cycle; completion adds one interconnect.latency per step. HBM traffic is "
      + "counted as twice the link bytes, with no contention charged against the DMA engine, as "
      + "for allreduce. One whose elems or rows is the immediate 0 with register r0 is a LINK "
      + "fence, as an allreduce is: it moves nothing, meets no other chip, and completes when "
      + "the LINK work queued before it has completed.";

  private static final List<InsnDef> ALL = build();
  private static final InsnDef[] BY_OPCODE = new InsnDef[256];
  private static final Map<String, InsnDef> BY_MNEMONIC = new LinkedHashMap<>();

  static {
    for (InsnDef d : ALL) {
      BY_OPCODE[d.opcode()] = d;
      BY_MNEMONIC.put(d.mnemonic(), d);
    }
    List<String> problems = problems();
    if (!problems.isEmpty()) {
      throw new IllegalStateException("the ISA table is inconsistent:\n  "
          + String.join("\n  ", problems));
    }
  }

  /** Every instruction, in opcode order. */
  public static List<InsnDef> all() {
    return ALL;
  }

  /** The instruction with this opcode, or null. */
  public static InsnDef byOpcode(int opcode) {
    return opcode >= 0 && opcode < 256 ? BY_OPCODE[opcode] : null;
  }

  /** The instruction with this mnemonic, or null. */
  public static InsnDef byMnemonic(String mnemonic) {
    return BY_MNEMONIC.get(mnemonic);
  }

  /**
   * The table's self-check, riscv-opcodes style: every bit of every instruction is assigned
   * exactly once, every range fits its field, opcodes are unique and never 0x00 or 0xFF, every
   * default is legal, optional positional operands come last. Returns one line per problem;
   * empty when the table is sound.
   */
  public static List<String> problems() {
    List<String> out = new ArrayList<>();
    Map<Integer, String> opcodes = new LinkedHashMap<>();
    Map<String, String> mnemonics = new LinkedHashMap<>();
    for (InsnDef d : ALL) {
      String who = d.mnemonic();
      if (d.opcode() <= 0x00 || d.opcode() >= 0xFF) {
        out.add(who + ": opcode 0x" + Integer.toHexString(d.opcode()) + " is reserved illegal");
      }
      String prev = opcodes.put(d.opcode(), who);
      if (prev != null) {
        out.add(who + ": opcode 0x" + Integer.toHexString(d.opcode()) + " already used by " + prev);
      }
      if (mnemonics.put(who, who) != null) {
        out.add(who + ": mnemonic defined twice");
      }
      String[] owner = new String[InsnDef.WORD_BITS];
      for (Field f : d.fields()) {
        if (f.width() < 1 || f.lo() < 0 || f.hi() >= InsnDef.WORD_BITS) {
          out.add(who + "." + f.name() + ": bits " + f.lo() + ".." + f.hi() + " outside the word");
          continue;
        }
        for (int b = f.lo(); b <= f.hi(); b++) {
          if (owner[b] != null) {
            out.add(who + ": bit " + b + " assigned to both " + owner[b] + " and " + f.name());
          }
          owner[b] = f.name();
        }
        if (f.kind() == FieldKind.UIMM || f.kind() == FieldKind.SIMM) {
          long lo = f.kind() == FieldKind.UIMM ? 0
              : (f.width() == 64 ? Long.MIN_VALUE : -(1L << (f.width() - 1)));
          long hi = f.width() == 64 ? Long.MAX_VALUE
              : (f.kind() == FieldKind.UIMM ? (1L << f.width()) - 1 : (1L << (f.width() - 1)) - 1);
          if (f.min() < lo || f.max() > hi || f.min() > f.max()) {
            out.add(who + "." + f.name() + ": range " + f.min() + ".." + f.max()
                + " does not fit " + f.width() + " bits");
          }
        }
        if (f.kind() == FieldKind.ENUM) {
          for (AsmEnum e : f.allowed()) {
            if (e.ordinal() >= (1 << f.width())) {
              out.add(who + "." + f.name() + ": " + e.asmName() + " does not fit " + f.width()
                  + " bits");
            }
          }
        }
      }
      for (int b = 0; b < InsnDef.WORD_BITS; b++) {
        if (owner[b] == null) {
          out.add(who + ": bit " + b + " is not assigned");
        }
      }
      boolean sawOptional = false;
      for (Operand o : d.operands()) {
        if (!o.keyword() && o.optional()) {
          sawOptional = true;
        } else if (!o.keyword() && sawOptional) {
          out.add(who + "." + o.name() + ": a required operand after an optional one");
        }
        if (o.optional()) {
          for (int i = 0; i < o.fields().size(); i++) {
            Field f = o.fields().get(i);
            if (!f.legal(f.valueOf(o.defaults()[i]))) {
              out.add(who + "." + o.name() + ": default " + o.defaults()[i] + " is not legal");
            }
          }
        }
      }
      if (d.cost() == null || d.example() == null || d.semantics().isBlank()) {
        out.add(who + ": missing cost, example or semantics");
      }
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------------
  // The table.

  private static List<InsnDef> build() {
    List<InsnDef> t = new ArrayList<>();

    // ---- control unit: scalar registers, loops, synchronization
    t.add(InsnDef.builder(0x01, "halt", CTRL)
        .semantics("Stops issuing (this stream's issuing, after a fork). The program ends when "
            + "every stream has halted and every engine queue has drained; a queue that can never "
            + "drain is a token deadlock.")
        .cost(1, NONE, 0, "-", v -> 0).example("halt").build());
    t.add(InsnDef.builder(0x02, "nop", CTRL)
        .semantics("Does nothing. With wait=t it is an explicit wait: the control unit stops "
            + "issuing until token t is positive (and takes it); with signal=t it signals t.")
        .cost(1, NONE, 0, "-", v -> 0).example("nop wait=3, signal=4").build());
    t.add(InsnDef.builder(0x03, "barrier", CTRL)
        .semantics("The control unit stops issuing until every engine queue is empty and every "
            + "engine is idle (after a fork: until this stream's queues are empty and its "
            + "instructions have completed).")
        .cost(1, NONE, 0, "-", v -> 0).example("barrier").build());
    t.add(InsnDef.builder(0x04, "li", CTRL)
        .reg("rd", "destination register")
        .simm("imm", 64, "64-bit value (any signed or unsigned 64-bit literal)")
        .semantics("rd = imm.")
        .cost(1, NONE, 0, "-", v -> 0).example("li r5, 4294967296").build());
    t.add(InsnDef.builder(0x05, "ldarg", CTRL)
        .reg("rd", "destination register")
        .uimm("index", 16, 0, 65535, "word index into the argument block")
        .reg("rs", "register added to the index (r0: none), e.g. a sequence's number in an "
            + "argument array").optional(0)
        .semantics("rd = the 64-bit little-endian word at HBM address argbase + 8 * (index + rs), "
            + "where argbase and the block's length in words are given at launch. An index + rs "
            + "outside the block (negative, or at or past its length) traps as an out-of-bounds "
            + "access.")
        .cost(1, NONE, 0, "-", v -> 0).example("ldarg r3, 5, r7").build());
    scalar3(t, 0x06, "add", "rd = rs1 + rs2 (64-bit, wrapping).", "add r1, r2, r3");
    scalar3(t, 0x07, "sub", "rd = rs1 - rs2 (64-bit, wrapping).", "sub r1, r2, r3");
    scalar3(t, 0x08, "mul", "rd = rs1 * rs2 (low 64 bits).", "mul r1, r2, r3");
    scalar3(t, 0x09, "min", "rd = min(rs1, rs2), signed.", "min r1, r2, r3");
    scalar3(t, 0x0A, "max", "rd = max(rs1, rs2), signed.", "max r1, r2, r3");
    t.add(InsnDef.builder(0x0B, "addi", CTRL)
        .reg("rd", "destination register").reg("rs1", "source register")
        .simm("imm", 32, "signed addend")
        .semantics("rd = rs1 + imm (64-bit, wrapping).")
        .cost(1, NONE, 0, "-", v -> 0).example("addi r4, r4, -128").build());
    t.add(InsnDef.builder(0x0C, "muli", CTRL)
        .reg("rd", "destination register").reg("rs1", "source register")
        .simm("imm", 32, "signed factor")
        .semantics("rd = rs1 * imm (low 64 bits).")
        .cost(1, NONE, 0, "-", v -> 0).example("muli r6, r3, 256").build());
    t.add(InsnDef.builder(0x0D, "shli", CTRL)
        .reg("rd", "destination register").reg("rs1", "source register")
        .uimm("shamt", 6, 0, 63, "shift amount")
        .semantics("rd = rs1 << shamt.")
        .cost(1, NONE, 0, "-", v -> 0).example("shli r6, r3, 7").build());
    t.add(InsnDef.builder(0x0E, "shri", CTRL)
        .reg("rd", "destination register").reg("rs1", "source register")
        .uimm("shamt", 6, 0, 63, "shift amount")
        .semantics("rd = rs1 >>> shamt (logical: zeros shift in).")
        .cost(1, NONE, 0, "-", v -> 0).example("shri r6, r3, 7").build());
    t.add(InsnDef.builder(0x0F, "loop", CTRL)
        .count("count", 32, "iteration count, unsigned")
        .bodyLen("body", 16, "number of instructions in the body, which starts right after the "
            + "loop; a label names the first instruction after the body")
        .semantics("Runs the next `body` instructions `count` times (count read once, at issue; 0 "
            + "skips the body). Zero overhead: the jump back costs no cycle. Loops nest 4 deep; an "
            + "inner body must end at or before its outer body's end, and a fifth level traps.")
        .cost(1, NONE, 0, "-", v -> 0).example("loop r7, done").build());
    t.add(InsnDef.builder(0x10, "fork", CTRL)
        .bodyLen("body", 31, "number of instructions of stream 1's code, which starts right after "
            + "the fork; a label names the first instruction after it, where stream 0 goes on")
        .flag("fair_dma", "while stream 1 runs, the DMA engine alternates between the two "
            + "streams' queues when both heads can start (else stream 0's starts first)")
        .semantics("Starts control stream 1 at the next instruction, with a copy of stream 0's "
            + "registers and no loops, and goes on `body` instructions later. Stream 1 issues its "
            + "own instructions, into its own queue in each engine, beside stream 0, until its "
            + "`halt`, the last instruction of its code (running past it traps). Only stream 0 "
            + "forks, outside any loop; while the previous stream 1 has not halted and completed "
            + "its instructions, a fork waits. Each stream has its own tokens 1..23; tokens "
            + "24..31 are shared, for one stream to signal the other (see Synchronization).")
        .cost(1, NONE, 0, "-", v -> 0).example("fork done").build());

    // ---- DMA: strided block copies
    t.add(InsnDef.builder(0x20, "dma", DMA)
        .enumf("dst_space", 2, MemSpace.class, "destination memory")
        .addr("dst", 16, "destination byte address")
        .reg("dst_rstride", "destination row stride in bytes (signed)")
        .enumf("src_space", 2, MemSpace.class, "source memory")
        .addr("src", 16, "source byte address")
        .reg("src_rstride", "source row stride in bytes (signed)")
        .uimm("row_bytes", 17, 0, (1 << 17) - 1, "bytes per row")
        .count(TILE_ROWS, 10, "rows per plane")
        .count("planes", 6, "planes (the third dimension)").kw(0, 1)
        .reg("dst_pstride", "destination plane stride in bytes (signed)").kw(0)
        .reg("src_pstride", "source plane stride in bytes (signed)").kw(0)
        .semantics("For p < planes, r < rows: copies row_bytes bytes from src + p*src_pstride + "
            + "r*src_rstride to dst + p*dst_pstride + r*dst_rstride, in that order, each row read "
            + "completely before it is written.")
        .cost(64, BYTES, 1, "row_bytes * rows * planes",
            v -> v.field("row_bytes") * v.count(TILE_ROWS) * v.count("planes"))
        .example("dma sram, r8, r9, hbm, r10+4096, r11, 256, 128, planes=4, src_pstride=r12")
        .build());
    t.add(InsnDef.builder(0x21, "gather", DMA)
        .enumf("dst_space", 2, MemSpace.class, "destination memory")
        .addr("dst", 16, "destination byte address")
        .reg("dst_rstride", "destination row stride in bytes (signed)")
        .enumf("src_space", 2, MemSpace.class, "source memory (the table)")
        .addr("src", 16, "byte address of table row 0")
        .reg("src_rstride", "table row stride in bytes (signed)")
        .uimm("row_bytes", 17, 0, (1 << 17) - 1, "bytes per row")
        .count(TILE_ROWS, 10, "rows to gather")
        .addr("idx", 11, "SRAM byte address of the row indices")
        .reg("limit", "register holding the table's rows (r0: no bound)").kw(0)
        .flag("idx64", "indices are i64 (else i32)")
        .semantics("For r < rows: i = the signed i32 (or i64) at SRAM idx + 4r (8r); copies "
            + "row_bytes bytes from src + i*src_rstride to dst + r*dst_rstride. Embedding "
            + "lookup. With a limit register other than r0, an i outside [0, limit) traps as an "
            + "out-of-bounds access naming the index, before any row is copied: a table's "
            + "neighbours in memory are never read as its rows, however the indices were "
            + "computed. Any index whose row lies outside its memory traps the same way.")
        .cost(64, BYTES, 1, "row_bytes * rows",
            v -> v.field("row_bytes") * v.count(TILE_ROWS))
        .example("gather sram, r8, r9, hbm, r10, r11, 1536, r3, r12, limit=r13")
        .build());
    t.add(InsnDef.builder(0x22, "scatter", DMA)
        .enumf("dst_space", 2, MemSpace.class, "destination memory")
        .addr("dst", 16, "destination byte address of row 0 at index 0")
        .reg("dst_rstride", "destination row stride in bytes (signed)")
        .reg("dst_istride", "destination bytes per unit of a row's index (signed)")
        .enumf("src_space", 2, MemSpace.class, "source memory")
        .addr("src", 16, "source byte address")
        .reg("src_rstride", "source row stride in bytes (signed)")
        .uimm("row_bytes", 12, 0, (1 << 12) - 1, "bytes per row (a head's keys or values)")
        .count(TILE_ROWS, 10, "rows to scatter")
        .addr("idx", 16, "SRAM byte address of the row indices")
        .flag("idx64", "indices are i64 (else i32)")
        .semantics("For r < rows: i = the signed i32 (or i64) at SRAM idx + 4r (8r); copies "
            + "row_bytes bytes from src + r*src_rstride to dst + r*dst_rstride + i*dst_istride. "
            + "Writes each row at its own offset, as a KV cache's new entries at their sequences' "
            + "lengths; a destination outside memory traps as an out-of-bounds access.")
        .cost(64, BYTES, 1, "row_bytes * rows",
            v -> v.field("row_bytes") * v.count(TILE_ROWS))
        .example("scatter hbm, r8, r9, r10, sram, r11, r12, 256, r3, r13, idx64=1")
        .build());

    // ---- LINK: chip-to-chip collectives, on their own engine beside the DMA
    t.add(InsnDef.builder(0x28, "allreduce", LINK)
        .enumf("space", 2, MemSpace.class, "memory that holds the buffer on every chip")
        .addr("buf", 16, "byte address of the buffer's first row (the same on every chip)")
        .count("elems", 32, "elements per row")
        .enumf("dtype", 3, DType.class, "element type of the buffer", DType.F32, DType.BF16)
        .uimm(CHIPS, 7, 1, 64, CHIPS_DOC)
        .count(TILE_ROWS, 10, "rows").kw(0, 1)
        .reg("stride", "row stride in bytes (signed)").kw(0)
        .reg("urgent", "nonzero: nothing queued after it hides its latency (the one-step "
            + "algorithm may finish it sooner)").kw(0)
        .semantics("Sum all-reduce across the group: when every chip of the group has started its "
            + "allreduce, every chip's buffer[r][i] (row r at buf + r*stride) becomes the sum "
            + "over chips c of buffer_c[r][i] for r < rows, i < elems, added in f32 in chip order "
            + "0, 1, .. chips-1 and rounded once to dtype; with chips=1 it is the identity. "
            + MEETING + " Rows let a column block of a matrix (a finished weight panel's outputs) "
            + "be summed while the next block is computed. Algorithm: a reduce-scatter then an "
            + "all-gather, each chip sending 2(chips-1)/chips x bytes in all; for a group of a "
            + "power-of-two size by recursive halving then recursive doubling (2 log2(chips) "
            + "steps), otherwise around a ring (2(chips-1) steps). An urgent allreduce (its "
            + "register nonzero, say the last panel of a matmul's sums, whose completion the next "
            + "op waits for) may go in one step instead: each chip sends its whole buffer to every "
            + "other ((chips-1) x bytes) and adds what it receives, in the same order; the LINK "
            + "engine takes whichever algorithm finishes it first, so a small buffer's latency is "
            + "one step, not 2 log2(chips). The sums are the same either way. Time: it starts "
            + "when the last chip of the group arrives and occupies the LINK queue for 64 + "
            + "ceil(link bytes / link) cycles, with link bytes 2(chips-1)/chips x bytes (the "
            + "table's work) or (chips-1) x bytes in one step, bytes = rows x elems x esize and "
            + "link = interconnect.bandwidth in bytes per cycle; completion adds one "
            + "interconnect.latency per step. The buffer is read and written once per step's "
            + "bytes: HBM traffic is counted as twice the link bytes. The link shares "
            + "HBM with the DMA engine, but the model charges no contention between them: each "
            + "runs at its own rate. An allreduce whose elems or rows is the immediate 0 with "
            + "register r0 is a LINK fence: it moves nothing, meets no other chip, and completes "
            + "when the LINK work queued before it has completed (at the end of its own 64 "
            + "cycles at the earliest); its signal tells another engine that the earlier sums "
            + "are done.")
        .cost(64, LINK_BYTES, 1, "2 * (chips - 1) * rows * elems * esize / chips", v -> {
          long chips = v.field(CHIPS);
          return (2 * (chips - 1) * collectiveBytes(v) + chips - 1) / chips;
        })
        .example("allreduce hbm, r8+4096, r9, bf16, 8, rows=r10, stride=r11")
        .build());
    t.add(blockCollective(0x29, "reducescatter",
        "byte address of row 0 of this chip's block of the sums",
        "byte address of row 0 of the chips x rows rows this chip adds in (chip c's block: "
            + "rows c*rows onwards)",
        DType.F32, DType.BF16)
        .semantics("Sum reduce-scatter across the group: src holds chips x rows rows of elems "
            + "elements of dtype on every chip, row r at src + r*S_src, and chip c's block is "
            + "its rows c*rows to c*rows + rows - 1. When every chip of the group has started its "
            + "reducescatter, on chip rank dst row r (at dst + r*S_dst) element i becomes the sum "
            + "over chips c of src_c row rank*rows + r element i, for r < rows, i < elems, added "
            + "in f32 in chip order 0, 1, .. chips-1 and rounded once to dtype: each chip keeps "
            + "the sums of its own block, 1/chips of what an allreduce would give it. With rows=1 "
            + "and packed rows (r0 strides) block c is the elems contiguous elements at src + "
            + "c*elems*esize; with rows and strides a matmul reduce-scatters each finished column "
            + "panel of its output while it computes the next. With chips=1 it copies rows x "
            + "elems elements. " + MEETING + " Sequence parallelism reduce-scatters a "
            + "row-parallel matmul's partial sums, normalizes each chip's rows, then all-gathers "
            + "them. Algorithm: for a group of a power-of-two size by recursive halving "
            + "(log2(chips) steps), otherwise around a ring (chips-1 steps). " + BLOCK_COLLECTIVE)
        .example("reducescatter hbm, r8, r9+4096, r10, bf16, 8, 3, rows=r11, sstride=r12, "
            + "dstride=r13")
        .build());
    // a copy: any type an instruction moves (fp8 activations and their f32 row scales too)
    t.add(blockCollective(0x2A, "allgather",
        "byte address of row 0 of the gathered chips x rows rows (chip c's block: rows c*rows "
            + "onwards)",
        "byte address of row 0 of this chip's block",
        DType.F32, DType.BF16, DType.F16, DType.F8E4M3, DType.F8E5M2, DType.I8, DType.I32)
        .semantics("All-gather across the group: src holds rows rows of elems elements of dtype "
            + "on every chip, row r at src + r*S_src. When every chip of the group has started "
            + "its allgather, on every chip dst row c*rows + r (at dst + (c*rows + r)*S_dst) "
            + "becomes src_c row r (its elems elements), for c < chips, r < rows: chip c's block "
            + "lands in rows c*rows to c*rows + rows - 1, bit for bit, and every chip holds the "
            + "same chips x rows rows. With rows=1 and packed rows (r0 strides) block c is the "
            + "elems contiguous elements at dst + c*elems*esize. With chips=1 it copies rows x "
            + "elems elements. " + MEETING + " Algorithm: for a group of a power-of-two size by "
            + "recursive doubling (log2(chips) steps), otherwise around a ring (chips-1 steps). "
            + BLOCK_COLLECTIVE)
        .example("allgather hbm, r8+4096, r9, r10, f32, 6, 5, rows=4, dstride=r11")
        .build());

    // ---- MXU
    t.add(InsnDef.builder(0x40, "mma", MXU)
        .addr("acc", 13, "ACC word address of C[0][0]")
        .reg("ldc", "ACC row stride of C, in words")
        .addr("a", 13, "SRAM byte address of A")
        .reg("lda", "SRAM row stride of A as stored, in bytes")
        .addr("b", 13, "SRAM byte address of B")
        .reg("ldb", "SRAM row stride of B as stored, in bytes")
        .uimm("m", 8, 1, 128, "rows of A and C")
        .uimm("n", 8, 1, 128, "columns of B and C")
        .count("k", 13, "the reduction length")
        .enumf("dtype", 3, DType.class, "element type of A and B",
            DType.F32, DType.BF16, DType.F16, DType.F8E4M3, DType.F8E5M2, DType.I8)
        .flag("ta", "A is stored transposed (k x m)")
        .flag("tb", "B is stored transposed (n x k)")
        .flag("accumulate", "add to C instead of overwriting it")
        .semantics("C[i][j] = (accumulate ? C[i][j] : 0) + sum over p < k of A[i][p] * B[p][j] for "
            + "i < m, j < n. Float inputs: C is f32 and each step is c = fma(a, b, c) with one "
            + "rounding, p ascending. i8 inputs: C is i32, wrapping. A[i][p] is at a + i*lda + "
            + "p*esize (ta: a + p*lda + i*esize); B[p][j] at b + p*ldb + j*esize (tb: b + j*ldb + "
            + "p*esize); C[i][j] at acc + i*ldc + j.")
        .cost(0, MACS, 1, "m * n * k", v -> v.field("m") * v.field("n") * v.count("k"))
        .latency(128)
        .example("mma r20, r21, r22, r23, r24, r25, 128, 128, r26, bf16, tb=1, accumulate=1")
        .build());

    // ---- VPU
    t.add(tile(InsnDef.builder(0x60, "vbin", VPU)
        .enumf("op", 3, BinOp.class, "the function")
        .addr("dst", 10, "SRAM byte address of the result").reg("dst_stride", "its row stride")
        .addr("a", 10, "SRAM byte address of a").reg("a_stride", "its row stride")
        .addr("b", 10, "SRAM byte address of b").reg("b_stride", "its row stride"))
        .enumf("bcast", 2, Bcast.class, "how b is broadcast").kw(0)
        .flag("b_bf16", "b holds bf16, whatever dtype (a bf16 partial sum added to f32 rows)")
        .semantics("dst[i][j] = op(a[i][j], b') for i < rows, j < cols, where b' is b[i][j], or "
            + "with bcast=row b[0][j], col b[i][0], scalar b[0][0]. Operands are converted to f32 "
            + "(b from bf16 with b_bf16=1, exactly), the result is rounded once to dtype.")
        .cost(16, ELEMENTS, 1, "rows * cols", InsnTable::tileElements)
        .example("vbin add, r8, r9, r10, r9, r11, r0, r12, r13, bf16, bcast=row")
        .build());
    t.add(tile(InsnDef.builder(0x61, "vbini", VPU)
        .enumf("op", 3, BinOp.class, "the function")
        .addr("dst", 10, "SRAM byte address of the result").reg("dst_stride", "its row stride")
        .addr("a", 10, "SRAM byte address of a").reg("a_stride", "its row stride")
        .f32("imm", "the f32 scalar operand"))
        .flag("rev", "swap the operands: op(imm, a)")
        .semantics("dst[i][j] = op(a[i][j], imm), or op(imm, a[i][j]) with rev=1, in f32, rounded "
            + "once to dtype.")
        .cost(16, ELEMENTS, 1, "rows * cols", InsnTable::tileElements)
        .example("vbini mul, r8, r9, r8, r9, 0.125, r12, r13, f32")
        .build());
    t.add(tile(InsnDef.builder(0x62, "vun", VPU)
        .enumf("fn", 4, UnaryFn.class, "the function")
        .addr("dst", 10, "SRAM byte address of the result").reg("dst_stride", "its row stride")
        .addr("src", 10, "SRAM byte address of the input").reg("src_stride", "its row stride"))
        .semantics("dst[i][j] = fn(src[i][j]) in f32 (see the function table), rounded once to "
            + "dtype.")
        .cost(16, ELEMENTS, 1, "rows * cols", InsnTable::tileElements)
        .example("vun gelu_erf, r8, r9, r8, r9, r12, r13, f32")
        .build());
    t.add(tile(InsnDef.builder(0x63, "vred", VPU)
        .enumf("op", 2, RedOp.class, "the reduction")
        .addr("dst", 10, "SRAM byte address of the result column").reg("dst_stride",
            "byte distance between consecutive results")
        .addr("src", 10, "SRAM byte address of the input").reg("src_stride", "its row stride"))
        .flag("abs", "reduce the absolute values (with max: a symmetric quantization's abs-max)")
        .semantics("dst[i] (at dst + i*dst_stride) = op over j < cols of src[i][j] (|src[i][j]| "
            + "with abs=1, exact), computed in f32 (see the reduction table), rounded once to "
            + "dtype.")
        .cost(16, ELEMENTS, 1, "rows * cols", InsnTable::tileElements)
        .example("vred max, r14, r15, r8, r9, r12, r13, f32")
        .build());
    t.add(tile(InsnDef.builder(0x64, "vfill", VPU)
        .addr("dst", 10, "SRAM byte address of the tile").reg("dst_stride", "its row stride")
        .f32("value", "the value"))
        .semantics("dst[i][j] = value rounded to dtype, for i < rows, j < cols.")
        .cost(16, ELEMENTS, 1, "rows * cols", InsnTable::tileElements)
        .example("vfill r8, r9, 0.0, r12, r13, bf16")
        .build());
    t.add(tile(InsnDef.builder(0x6E, "vsel", VPU)
        .addr("dst", 10, "SRAM byte address of the result").reg("dst_stride", "its row stride")
        .addr("cond", 10, "SRAM byte address of the condition, one byte per element")
        .reg("cond_stride", "its row stride in bytes")
        .addr("a", 10, "SRAM byte address of the values taken where the condition holds")
        .reg("a_stride", "their row stride")
        .addr("b", 10, "SRAM byte address of the values taken elsewhere").reg("b_stride",
            "their row stride"))
        .enumf("a_bcast", 2, Bcast.class, "how a is broadcast").kw(0)
        .enumf("b_bcast", 2, Bcast.class, "how b is broadcast").kw(0)
        .semantics("dst[i][j] = a'[i][j] where the byte cond[i][j] (at cond + i*cond_stride + j) "
            + "is not 0, else b'[i][j]; a' and b' as vbin's b' with a_bcast and b_bcast. The "
            + "element is copied, not computed: NaN payloads, infinities and signed zeros pass "
            + "unchanged, whatever the element not taken holds (a select, where arithmetic on a "
            + "0/1 mask would let an infinity or NaN of the other side through).")
        .cost(16, ELEMENTS, 1, "rows * cols", InsnTable::tileElements)
        .example("vsel r8, r9, r10, r11, r12, r9, r13, r0, r14, r15, f32, b_bcast=scalar")
        .build());
    t.add(tile(InsnDef.builder(0x65, "softmax", VPU)
        .addr("dst", 10, "SRAM byte address of the probabilities").reg("dst_stride",
            "its row stride")
        .addr("src", 10, "SRAM byte address of the scores").reg("src_stride", "its row stride"))
        .f32("scale", "multiplies every score first").kw(Float.floatToRawIntBits(1.0f))
        .flag("causal", "mask column j of row i when j > i + diag")
        .reg("diag", "signed causal offset: query row i sits at key column i + diag").kw(0)
        .reg("valid", "mask columns j >= valid (r0: no length mask)").kw(0)
        .reg("window", "sliding window: when positive, mask column j of row i when "
            + "j <= i + diag - window (r0: no window)").kw(0)
        .flag("out_bf16", "the probabilities are written as bf16 (for a bf16 P V), not dtype")
        .flag("src_acc", "the scores are f32 words in ACC: src is a word address, src_stride "
            + "counts words")
        .reg("sums", "register holding the SRAM byte address of one f32 per row: other than r0, "
            + "the probabilities are left unnormalized and each row's 1 / sum goes there").kw(0)
        .semantics("Per row i: s[j] = scale * src[i][j] in f32; unmasked columns get exp(s[j] - m) "
            + "/ sum, with m the unmasked maximum and the sum accumulated in f32 from the first "
            + "unmasked column; masked columns (causal, j >= valid, or outside a positive window) "
            + "get 0, and a fully masked row is all 0. Each probability is rounded to dtype, then "
            + "with out_bf16=1 to bf16 (as a cvt after it would), and dst holds bf16. With "
            + "src_acc=1, src[i][j] is the f32 word ACC[src + i*src_stride + j]: the scores an "
            + "mma left there, read without an accrd copying them to SRAM first (the same "
            + "numbers: that copy is exact). With a sums register other than r0, unmasked columns "
            + "get exp(s[j] - m) itself and the f32 word at sums + 4i gets f32(1 / sum), 0 for a "
            + "fully masked row: a P V of those probabilities read out with accrd bias_mul=1 "
            + "bias_bcast=col over the sums is the attention with its division moved after the "
            + "product (FlashAttention's deferred normalization), one pass fewer over the scores.")
        .cost(32, ELEMENTS, 1, "rows * cols * passes (3, or 2 with sums)",
            v -> tileElements(v) * (v.field("sums") == 0 ? 3 : 2))
        .example("softmax r8, r9, r8, r9, r12, r13, f32, scale=0.125, causal=1, diag=r16, sums=r17")
        .build());
    t.add(tile(InsnDef.builder(0x66, "layernorm", VPU)
        .addr("dst", 10, "SRAM byte address of the result")
        .addr("src", 10, "SRAM byte address of the input")
        .reg("stride", "row stride of both dst and src")
        .addr("gamma", 10, "SRAM byte address of the scale vector (cols elements)")
        .addr("beta", 10, "SRAM byte address of the shift vector (cols elements)"))
        .f32("eps", "added to the variance").kw(Float.floatToRawIntBits(1e-5f))
        .semantics("Per row: mean = sum(x)/cols, var = sum((x-mean)^2)/cols (f32 sums from column "
            + "0), r = f32(1/sqrt(f64(var + eps))), dst = (x - mean) * r * gamma[j] + beta[j], "
            + "each step rounded to f32, the result once to dtype. gamma and beta have type dtype.")
        .cost(32, ELEMENTS, 3, "rows * cols", InsnTable::tileElements)
        .example("layernorm r8, r8, r9, r14, r15, r12, r13, f32, eps=1.0E-12")
        .build());
    t.add(tile(InsnDef.builder(0x67, "rmsnorm", VPU)
        .addr("dst", 10, "SRAM byte address of the result").reg("dst_stride", "its row stride")
        .addr("src", 10, "SRAM byte address of the input").reg("src_stride", "its row stride")
        .addr("gamma", 10, "SRAM byte address of the scale vector (cols elements)"))
        .f32("eps", "added to the mean square").kw(Float.floatToRawIntBits(1e-6f))
        .flag("out_bf16", "the result is written as bf16 (for a bf16 matmul), not dtype")
        .semantics("Per row: ms = sum(x^2)/cols (f32 sum from column 0), r = f32(1/sqrt(f64(ms + "
            + "eps))), dst = x * r * gamma[j], each step rounded to f32, the result once to dtype, "
            + "then with out_bf16=1 to bf16 (as a cvt after it would), and dst holds bf16.")
        .cost(32, ELEMENTS, 2, "rows * cols", InsnTable::tileElements)
        .example("rmsnorm r8, r9, r8, r9, r14, r12, r13, bf16, eps=1.0E-5")
        .build());
    t.add(tile(InsnDef.builder(0x68, "rope", VPU)
        .enumf("mode", 1, RopeMode.class, "which elements pair up")
        .addr("dst", 10, "SRAM byte address of the result").reg("dst_stride", "its row stride")
        .addr("src", 10, "SRAM byte address of the input").reg("src_stride", "its row stride")
        .addr("cos", 10, "SRAM byte address of the cosine table (row 0)")
        .addr("sin", 10, "SRAM byte address of the sine table (row 0)")
        .reg("table_stride", "row stride of both tables")
        .reg("pos", "position of row 0: row i uses table row pos + i"))
        .reg("group", "rows per table row: row i uses table row (pos + i) / group, so the heads "
            + "of one sequence share its row (r0: one row each)").kw(0)
        .semantics("Row i uses t = (pos + i) / g, with g the group register's value (1 when it is "
            + "r0 or below 1), and h = cols/2 (cols must be even). For c < h, with (x1, "
            + "x2) = (x[c], x[c+h]) (half) or (x[2c], x[2c+1]) (interleaved) and cs = cos[t][c], "
            + "sn = sin[t][c]: y1 = x1*cs - x2*sn, y2 = x2*cs + x1*sn, in f32, rounded to dtype.")
        .cost(16, ELEMENTS, 1, "rows * cols", InsnTable::tileElements)
        .example("rope half, r8, r9, r8, r9, r14, r15, r17, r16, r12, r13, f32")
        .build());
    t.add(tile(InsnDef.builder(0x69, "vglu", VPU)
        .enumf("fn", 4, UnaryFn.class, "the gate's activation")
        .addr("dst", 10, "SRAM byte address of the result").reg("dst_stride", "its row stride")
        .addr("gate", 10, "SRAM byte address of the gate").reg("gate_stride", "its row stride")
        .addr("up", 10, "SRAM byte address of the linear half").reg("up_stride", "its row stride"))
        .semantics("dst[i][j] = fn(gate[i][j]) * up[i][j] in f32, rounded once to dtype (SwiGLU "
            + "with fn=silu, GeGLU with gelu_erf).")
        .cost(16, ELEMENTS, 1, "rows * cols", InsnTable::tileElements)
        .example("vglu silu, r8, r9, r10, r9, r11, r9, r12, r13, bf16")
        .build());
    t.add(InsnDef.builder(0x6A, "cvt", VPU)
        .addr("dst", 10, "SRAM byte address of the result").reg("dst_stride", "its row stride")
        .enumf("dst_dtype", 3, DType.class, "result type", DType.COMPUTE)
        .addr("src", 10, "SRAM byte address of the input").reg("src_stride", "its row stride")
        .enumf("src_dtype", 3, DType.class, "input type", DType.COMPUTE)
        .reg(TILE_ROWS, "register holding the number of rows")
        .reg(TILE_COLS, "register holding the number of columns")
        .enumf("mode", 2, ScaleMode.class, "where the scale comes from").kw(0)
        .f32("scale", "per-tensor scale").kw(Float.floatToRawIntBits(1.0f))
        .addr("scale_vec", 10, "SRAM byte address of an f32 scale vector").kw(0, 0)
        .flag("div", "divide by the scale instead of multiplying")
        .semantics("dst[i][j] = convert(f32(src[i][j]) * s) (or / s with div=1), with s the scale "
            + "per mode; one f32 rounding, then the dtype's rounding and saturation. "
            + "Quantize: f32 to i8/fp8 with div=1; dequantize: i8/fp8 to f32.")
        .cost(16, ELEMENTS, 1, "rows * cols", InsnTable::tileElements)
        .example("cvt r8, r9, i8, r10, r11, f32, r12, r13, scale=0.05, div=1")
        .build());
    t.add(accReadout(InsnDef.builder(0x6B, "accrd", VPU))
        .flag("acc_i32", "ACC holds i32 (an i8 matmul), else f32")
        .f32("scale", "multiplies every element first").kw(Float.floatToRawIntBits(1.0f))
        .enumf("bias_bcast", 2, Bcast.class, "how the f32 bias is broadcast (none: no bias)").kw(0)
        .addr("bias", 10, "SRAM byte address of the f32 bias").kw(0, 0)
        .enumf("act", 4, UnaryFn.class, "activation applied last").kw(0)
        .flag("bias_mul", "the bias multiplies instead of adding (a per-row or per-column scale)")
        .semantics("dst[i][j] = convert(act(v * scale + bias')) with v = ACC[acc + i*acc_stride + "
            + "j] as f32 (acc_i32: the i32 converted to f32) and bias' per bias_bcast; with "
            + "bias_mul=1, convert(act(v * scale * bias')) instead (a quantized matmul's per-row "
            + "or per-column scales); each step one f32 rounding. With acc_i32=1 and dtype=i32 "
            + "the word is copied unchanged.")
        .cost(16, ELEMENTS, 1, "rows * cols", InsnTable::tileElements)
        .example("accrd r8, r9, r20, r21, r12, r13, bf16, bias_bcast=row, bias=r14, act=gelu_tanh")
        .build());
    t.add(accReadout(InsnDef.builder(0x6D, "accdq", VPU))
        .reg("row_scales", "register holding the SRAM byte address of one f32 scale per row")
        .reg("col_scales", "register holding the SRAM byte address of one f32 scale per column")
        .flag("acc_i32", "ACC holds i32 (an i8 matmul), else f32")
        .f32("scale", "multiplies every element first").kw(Float.floatToRawIntBits(1.0f))
        .semantics("dst[i][j] = convert(f32(f32(v * scale) * row_scales[i]) * col_scales[j]) "
            + "with v = ACC[acc + i*acc_stride + j] as f32 (acc_i32: the i32 converted to f32), "
            + "each product one f32 rounding, then the dtype's rounding and saturation. A "
            + "quantized matmul's dequantization by per-token x scales and per-channel w scales "
            + "in one pass over the tile: the numbers of accrd bias_mul=1 bias_bcast=col (the row "
            + "scales) to f32, then cvt mode=col (the column scales), in half the VPU work.")
        .cost(16, ELEMENTS, 1, "rows * cols", InsnTable::tileElements)
        .example("accdq r8, r9, r20, r21, r12, r13, bf16, r14, r15")
        .build());
    t.add(InsnDef.builder(0x6F, "accglu", VPU)
        .enumf("fn", 4, UnaryFn.class, "the gate's activation")
        .addr("dst", 10, "SRAM byte address of the result").reg("dst_stride", "its row stride")
        .addr("gate", 10, "ACC word address of the gate's tile")
        .addr("up", 10, "ACC word address of the linear half's tile")
        .reg("acc_stride", "their row stride in words")
        .reg(TILE_ROWS, "register holding the number of rows")
        .reg(TILE_COLS, "register holding the number of columns")
        .enumf("dtype", 3, DType.class, "result type", DType.COMPUTE)
        .reg("row_scales", "register holding the SRAM byte address of one f32 scale per row "
            + "(r0: none)").kw(0)
        .reg("col_scales", "register holding the SRAM byte address of one f32 scale per column "
            + "of the gate, then one per column of the linear half (r0: none)").kw(0)
        .flag("acc_i32", "ACC holds i32 (an i8 matmul), else f32")
        .semantics("dst[i][j] = convert(fn(g) * u) with g = f32(f32(G * row_scales[i]) * "
            + "col_scales[j]) for G = ACC[gate + i*acc_stride + j] as f32 (acc_i32: the i32 "
            + "converted to f32), and u likewise from ACC[up + i*acc_stride + j] with "
            + "col_scales[cols + j], a scale of r0 taken as 1; each product one f32 rounding, "
            + "then the dtype's rounding. A gated unit's readout (SwiGLU with fn=silu, GeGLU "
            + "with gelu_erf or gelu_tanh) straight from the two matmuls' accumulators: the "
            + "numbers of an accrd (or, with the scales, an accdq) to f32 of each tile, then "
            + "vglu, then a cvt to dtype, in the VPU work of the vglu alone.")
        .cost(16, ELEMENTS, 1, "rows * cols", InsnTable::tileElements)
        .example("accglu silu, r8, r9, r20, r21, r22, r12, r13, bf16, row_scales=r14, "
            + "col_scales=r15")
        .build());
    t.add(InsnDef.builder(0x6C, "accwr", VPU)
        .addr("acc", 10, "ACC word address of the tile").reg("acc_stride", "its row stride in words")
        .addr("src", 10, "SRAM byte address of the input").reg("src_stride", "its row stride")
        .reg(TILE_ROWS, "register holding the number of rows")
        .reg(TILE_COLS, "register holding the number of columns")
        .enumf("dtype", 3, DType.class, "input type", DType.COMPUTE)
        .semantics("ACC[acc + i*acc_stride + j] = src[i][j] as f32 (float dtypes) or as i32 "
            + "(i8, i32): preloads a bias or a residual that mma then accumulates onto.")
        .cost(16, ELEMENTS, 1, "rows * cols", InsnTable::tileElements)
        .example("accwr r20, r21, r8, r9, r12, r13, f32")
        .build());
    return Collections.unmodifiableList(t);
  }

  private static void scalar3(List<InsnDef> t, int opcode, String mnemonic, String semantics,
      String example) {
    t.add(InsnDef.builder(opcode, mnemonic, CTRL)
        .reg("rd", "destination register").reg("rs1", "first source register")
        .reg("rs2", "second source register")
        .semantics(semantics).cost(1, NONE, 0, "-", v -> 0).example(example).build());
  }

  /** Appends the VPU tile shape and element type every tile instruction ends with. */
  private static InsnDef.Builder tile(InsnDef.Builder b) {
    return b.reg(TILE_ROWS, "register holding the number of rows")
        .reg(TILE_COLS, "register holding the number of columns")
        .enumf("dtype", 3, DType.class, "element type of every tile operand", DType.COMPUTE);
  }

  /** A readout's tile operands: ACC rows to dtype rows in SRAM. */
  private static InsnDef.Builder accReadout(InsnDef.Builder b) {
    return b.addr("dst", 10, "SRAM byte address of the result").reg("dst_stride", "its row stride")
        .addr("acc", 10, "ACC word address of the tile").reg("acc_stride", "its row stride in words")
        .reg(TILE_ROWS, "register holding the number of rows")
        .reg(TILE_COLS, "register holding the number of columns")
        .enumf("dtype", 3, DType.class, "result type", DType.COMPUTE);
  }

  private static long tileElements(Cost.Values v) {
    return v.count(TILE_ROWS) * v.count(TILE_COLS);
  }

  /**
   * The entry of reducescatter or allgather up to its semantics: chips blocks of rows x elems
   * elements, rows strided, one block per chip, of which each chip sends the chips - 1 that are
   * not its own.
   */
  private static InsnDef.Builder blockCollective(int opcode, String mnemonic, String dstDoc,
      String srcDoc, DType... dtypes) {
    return InsnDef.builder(opcode, mnemonic, LINK)
        .enumf("space", 2, MemSpace.class,
            "memory that holds dst and src, at the same addresses on every chip")
        .addr("dst", 16, dstDoc)
        .addr("src", 16, srcDoc)
        // 16 bits leave room for rows and strides; a longer row takes its count in the register
        .count("elems", 16, "elements per row")
        .enumf("dtype", 3, DType.class, "element type of dst and src", dtypes)
        .uimm(CHIPS, 7, 1, 64, CHIPS_DOC)
        .uimm("rank", 7, 0, 63, "this chip's index in the group, below chips")
        .count(TILE_ROWS, 10, "rows of one chip's block").kw(0, 1)
        .reg("sstride", "src row stride in bytes (signed; r0: packed, elems x esize)").kw(0)
        .reg("dstride", "dst row stride in bytes (signed; r0: packed, elems x esize)").kw(0)
        .cost(64, LINK_BYTES, 1, "(chips - 1) * rows * elems * esize",
            v -> (v.field(CHIPS) - 1) * collectiveBytes(v));
  }

  /**
   * rows x elems x the element size: the bytes an allreduce sums on each chip, or one chip's
   * block of a reducescatter or allgather.
   */
  public static long collectiveBytes(Cost.Values v) {
    return v.count(TILE_ROWS) * v.count("elems") * DType.values()[(int) v.field("dtype")].bytes();
  }

  /**
   * The link steps of one phase of a collective over {@code chips} chips (a reduce-scatter or
   * an all-gather), each paying the interconnect latency: log2(chips) for a power of two
   * (recursive halving or doubling), else chips - 1 (a ring); 0 for one chip.
   */
  public static int phaseSteps(int chips) {
    if (chips <= 1) {
      return 0;
    }
    return Integer.bitCount(chips) == 1 ? Integer.numberOfTrailingZeros(chips) : chips - 1;
  }

  /**
   * The link steps of one allreduce: a reduce-scatter then an all-gather, so twice
   * {@link #phaseSteps}. An urgent allreduce may take one step instead.
   */
  public static int allreduceSteps(int chips) {
    return 2 * phaseSteps(chips);
  }
}
