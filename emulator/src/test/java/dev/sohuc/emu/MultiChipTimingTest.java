package dev.sohuc.emu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sohuc.isa.Engine;
import dev.sohuc.isa.asm.Assembler;
import dev.sohuc.isa.container.SohuProgram;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * LINK collective timing (allreduce, reducescatter, allgather): the cost from the interconnect,
 * and the group's rendezvous.
 */
class MultiChipTimingTest {
  static final MachineDescription SOHU = MachineDescription.defaultTarget();
  static final long ELEMS = 1 << 20;

  static SohuProgram asm(String body) {
    return Assembler.assemble(".target \"sohu\", \"" + "0".repeat(64) + "\"\n" + body, "t.s");
  }

  static String allreduceOnly(int chips) {
    return "li r9, " + ELEMS + "\nallreduce hbm, r0+4096, r9, f32, " + chips + "\nhalt\n";
  }

  /**
   * The allreduce formula: its link bytes over the link rate, then one latency per step: 2 log2
   * chips for a power of two (recursive halving and doubling), 2 (chips - 1) otherwise (a ring).
   */
  static long allreduceCycles(int chips, long bytes) {
    long link = (2L * (chips - 1) * bytes + chips - 1) / chips;
    long steps = switch (chips) {
      case 2 -> 2;
      case 3 -> 4;
      case 4 -> 4;
      case 6 -> 10;
      case 8 -> 6;
      default -> throw new IllegalArgumentException("no expected steps for " + chips);
    };
    return 64 + (long) Math.ceil(link / SOHU.linkBytesPerCycle())
        + steps * SOHU.linkLatencyCycles();
  }

  static List<Map<String, Long>> noDims(int n) {
    return Collections.nCopies(n, Map.of());
  }

  @Test
  void costIsTheAllreduceFormula() {
    for (int chips : new int[] {2, 3, 4, 6, 8}) {
      SohuProgram p = asm(allreduceOnly(chips));
      MultiChipTiming.Report r = MultiChipTiming.run(Collections.nCopies(chips, p), SOHU,
          Options.defaults(), noDims(chips));
      long expected = allreduceCycles(chips, ELEMS * 4);
      // a few cycles of issue (li, allreduce) around the collective
      assertTrue(Math.abs(r.cycles() - expected) <= 4, chips + " chips: " + r.cycles()
          + " cycles, formula " + expected);
      assertEquals(1, r.collectives());
      assertEquals(chips * ((2L * (chips - 1) * ELEMS * 4 + chips - 1) / chips), r.linkBytes());
    }
  }

  /**
   * An urgent allreduce goes in one step when that finishes first: a 4 KB sum completes one
   * link latency after its 7 x 4 KB, not six latencies after its 2 x 7/8 x 4 KB; a 4 MB one
   * keeps reduce-scatter and all-gather, and so does a small one that is not urgent. A LINK
   * fence after the urgent sum completes with it.
   */
  @Test
  void anUrgentAllreduceOfASmallBufferTakesOneStep() {
    long small = 1024;
    String urgent = "li r9, %d\nli r10, 1\nallreduce hbm, r0+4096, r9, f32, 8, urgent=r10%s\n"
        + "halt\n";
    long oneStep = 64 + (long) Math.ceil(7 * small * 4 / SOHU.linkBytesPerCycle())
        + SOHU.linkLatencyCycles();
    MultiChipTiming.Report r = MultiChipTiming.runSymmetric(asm(String.format(urgent, small,
        "")), 8, SOHU, Options.defaults(), Map.of());
    assertTrue(Math.abs(r.cycles() - oneStep) <= 4, r.cycles() + " vs " + oneStep);
    assertEquals(8 * 7 * small * 4, r.linkBytes());
    assertTrue(oneStep < allreduceCycles(8, small * 4));
    MultiChipTiming.Report plain = MultiChipTiming.runSymmetric(asm(String.format(urgent, small,
        "").replace(", urgent=r10", "")), 8, SOHU, Options.defaults(), Map.of());
    assertTrue(Math.abs(plain.cycles() - allreduceCycles(8, small * 4)) <= 4,
        plain.cycles() + " cycles");
    MultiChipTiming.Report large = MultiChipTiming.runSymmetric(asm(String.format(urgent, ELEMS,
        "")), 8, SOHU, Options.defaults(), Map.of());
    assertTrue(Math.abs(large.cycles() - allreduceCycles(8, ELEMS * 4)) <= 4,
        large.cycles() + " cycles");
    MultiChipTiming.Report fenced = MultiChipTiming.runSymmetric(asm(String.format(urgent, small,
        "\nallreduce hbm, 0, 0, f32, 8, rows=0, signal=1\nnop wait=1")), 8, SOHU,
        Options.defaults(), Map.of());
    assertTrue(Math.abs(fenced.cycles() - oneStep) <= 70, fenced.cycles() + " vs " + oneStep);
  }

  @Test
  void aLateChipDelaysTheCollectiveForEveryone() {
    // chip 1 first copies 4 GiB HBM -> HBM (each byte read and written: half the HBM rate),
    // then joins
    String late = "li r9, " + ELEMS + "\nli r10, 65536\n"
        + "dma hbm, r0+4096, r0, hbm, r0+4096, r0, 65536, 1, planes=r10+0, signal=1\n"
        + "allreduce hbm, r0+4096, r9, f32, 2, wait=1\nhalt\n";
    SohuProgram early = asm(allreduceOnly(2));
    SohuProgram slow = asm(late);
    MultiChipTiming.Report alone = MultiChipTiming.run(List.of(early, early), SOHU,
        Options.defaults(), noDims(2));
    MultiChipTiming.Report together = MultiChipTiming.run(List.of(early, slow), SOHU,
        Options.defaults(), noDims(2));
    long dmaCycles = (long) Math.ceil(2 * 65536.0 * 65536 / SOHU.hbmBytesPerCycle());
    // the early chip finishes when the late one does: it waited at the rendezvous
    long c0 = together.chips().get(0).cycles();
    long c1 = together.chips().get(1).cycles();
    assertTrue(Math.abs(c0 - c1) <= 4, c0 + " vs " + c1);
    assertTrue(c0 >= alone.cycles() + dmaCycles, c0 + " < " + alone.cycles() + " + " + dmaCycles);
    assertTrue(c0 <= alone.cycles() + dmaCycles + SOHU.hbmLatencyCycles() + 200);
  }

  @Test
  void symmetricRunEqualsTheThreadedGroup() {
    String body = "li r9, " + ELEMS + "\nli r10, 1024\n"
        + "dma sram, r0, r0, hbm, r0+4096, r0, 65536, 1, planes=r10+0, signal=1\n"
        + "allreduce hbm, r0+4096, r9, bf16, 8, wait=1, signal=2\n"
        + "dma sram, r0, r0, hbm, r0+4096, r0, 65536, 1, wait=2\n"
        + "allreduce hbm, r0+4096, r9, f32, 8\nhalt\n";
    SohuProgram p = asm(body);
    MultiChipTiming.Report threaded = MultiChipTiming.run(Collections.nCopies(8, p), SOHU,
        Options.defaults(), noDims(8));
    MultiChipTiming.Report sym = MultiChipTiming.runSymmetric(p, 8, SOHU, Options.defaults(),
        Map.of());
    assertEquals(threaded.cycles(), sym.cycles());
    assertEquals(threaded.linkBytes(), sym.linkBytes());
    assertEquals(2, sym.collectives());
  }

  @Test
  void aChipThatNeverJoinsIsADeadlock() {
    SohuProgram joins = asm(allreduceOnly(2));
    SohuProgram skips = asm("li r9, 1\nhalt\n");
    Trap t = assertThrows(Trap.class, () -> MultiChipTiming.run(List.of(joins, skips), SOHU,
        Options.defaults(), noDims(2)));
    assertEquals(Trap.Kind.DEADLOCK, t.kind());
    assertTrue(t.getMessage().contains("waits in collective #1 (allreduce) but chip 1 stopped "
        + "after 0 collective(s)"), t.getMessage());
  }

  @Test
  void buffersOfDifferentSizesAreRejected() {
    SohuProgram a = asm(allreduceOnly(2));
    SohuProgram b = asm("li r9, 7\nallreduce hbm, r0+4096, r9, f32, 2\nhalt\n");
    Trap t = assertThrows(Trap.class, () -> MultiChipTiming.run(List.of(a, b), SOHU,
        Options.defaults(), noDims(2)));
    assertEquals(Trap.Kind.BAD_OPERAND, t.kind());
  }

  /** A shard timed alone stands for its symmetric group (one chip of N, as the bench times). */
  @Test
  void aSingleChipRunTimesItsGroupAsSymmetric() {
    TimingReport one = new Emulator(asm(allreduceOnly(1)), SOHU, Options.defaults())
        .runTiming(Map.of());
    assertTrue(one.cycles() < 100, "chips=1 moves nothing over the links: " + one.cycles());
    TimingReport alone = new Emulator(asm(allreduceOnly(2)), SOHU, Options.defaults())
        .runTiming(Map.of());
    assertEquals(MultiChipTiming.runSymmetric(asm(allreduceOnly(2)), 2, SOHU, Options.defaults(),
        Map.of()).cycles(), alone.cycles());
  }

  /**
   * The allreduce runs on the LINK engine, so a copy queued behind it on the DMA starts at once:
   * the run takes the longer of the two (the copy), not the sum of their occupancies. A 2-D
   * allreduce (rows x elems at a row stride) moves rows x elems elements.
   */
  @Test
  void theLinkOverlapsTheDmaAndSumsRows() {
    long rows = 64;
    String body = "li r9, " + ELEMS / rows + "\nli r10, " + rows + "\nli r11, " + 8 * ELEMS / rows
        + "\nli r12, 16384\n"
        + "allreduce hbm, r0+4096, r9, f32, 8, rows=r10, stride=r11\n"
        + "dma sram, r0, r0, hbm, r0+4096, r0, 65536, 1, planes=r12+0\nhalt\n";
    MultiChipTiming.Report r = MultiChipTiming.runSymmetric(asm(body), 8, SOHU,
        Options.defaults(), Map.of());
    long ring = allreduceCycles(8, ELEMS * 4);
    long dma = 64 + (long) Math.ceil(65536.0 * 16384 / SOHU.hbmBytesPerCycle())
        + SOHU.hbmLatencyCycles();
    assertEquals(8 * ((2L * 7 * ELEMS * 4 + 7) / 8), r.linkBytes());
    assertTrue(dma > ring, "the copy is the longer: " + dma + " vs " + ring);
    // a few cycles of issue (4 li, the two engine instructions) before the copy starts
    assertTrue(r.cycles() >= dma && r.cycles() <= dma + 8, r.cycles() + " vs " + dma);
  }

  /** f32 elements of one chip's block in the reducescatter and allgather tests: 1 MiB. */
  static final long BLOCK = 1 << 18;

  /** One reducescatter or allgather of a 1 MiB f32 block per chip, in HBM, as chip rank. */
  static String blockCollective(String mnemonic, int chips, int rank) {
    return mnemonic + " hbm, r10, r0+4096, r9, f32, " + chips + ", " + rank + "\n";
  }

  static SohuProgram blockProgram(String body) {
    return asm("li r9, " + BLOCK + "\nli r10, " + (1L << 30) + "\n" + body + "halt\n");
  }

  /**
   * reducescatter and allgather occupy the LINK for 64 + (chips - 1) blocks over the link rate,
   * and complete one link latency per step later: log2(8) = 3 steps (recursive halving or
   * doubling), 6 - 1 = 5 around a ring of 6. HBM traffic is twice the link bytes.
   */
  @Test
  void blockCollectivesCostTheirLinkBytesAndOneLatencyPerStep() {
    for (String mnemonic : List.of("reducescatter", "allgather")) {
      for (int chips : new int[] {8, 6}) {
        long steps = chips == 8 ? 3 : 5;
        long linkBytes = (chips - 1) * BLOCK * 4;
        TimingReport r = new Emulator(blockProgram(blockCollective(mnemonic, chips, 1)), SOHU,
            Options.defaults()).runTiming(Map.of());
        long busy = 64 + (long) Math.ceil(linkBytes / SOHU.linkBytesPerCycle());
        String what = mnemonic + " over " + chips + " chips";
        assertEquals(busy, r.engines().get(Engine.LINK).busyCycles(), what);
        long done = busy + steps * SOHU.linkLatencyCycles();
        // a few cycles of issue (two li, the collective) before it starts
        assertTrue(r.cycles() >= done && r.cycles() <= done + 4, what + ": " + r.cycles()
            + " cycles, formula " + done);
        assertEquals(2 * linkBytes, r.hbmBytes(), what);
      }
    }
  }

  /**
   * A block of rows sends every row: 8 chips, 4 rows of 1000 bf16 (strided, the rows from an
   * immediate or a register) occupy the LINK for 64 + 7 x 4 x 1000 x 2 bytes over the link rate,
   * complete log2(8) = 3 latencies later, and count twice the link bytes of HBM traffic.
   */
  @Test
  void blockCollectivesOfRowsCostEveryRow() {
    for (String mnemonic : List.of("reducescatter", "allgather")) {
      for (String rows : List.of("4", "r13+1")) {
        String body = "li r11, 4096\nli r12, 2048\nli r13, 3\n" + mnemonic
            + " hbm, r10, r0+4096, 1000, bf16, 8, 5, rows=" + rows + ", sstride=r11, dstride=r12\n";
        TimingReport r = new Emulator(blockProgram(body), SOHU, Options.defaults())
            .runTiming(Map.of());
        long linkBytes = 7L * 4 * 1000 * 2;
        long busy = 64 + (long) Math.ceil(linkBytes / SOHU.linkBytesPerCycle());
        String what = mnemonic + " of rows=" + rows;
        assertEquals(busy, r.engines().get(Engine.LINK).busyCycles(), what);
        long done = busy + 3 * SOHU.linkLatencyCycles();
        // a few cycles of issue (five li, the collective) before it starts
        assertTrue(r.cycles() >= done && r.cycles() <= done + 8, what + ": " + r.cycles()
            + " cycles, formula " + done);
        assertEquals(2 * linkBytes, r.hbmBytes(), what);
      }
    }
  }

  /**
   * The k-th collective of each chip meets the k-th of the others whatever its kind: chips
   * that each run an allreduce, a reducescatter and an allgather under their own rank time as
   * the symmetric group does.
   */
  @Test
  void collectivesOfEveryKindMeetInOrder() {
    List<SohuProgram> chips = new ArrayList<>();
    for (int rank = 0; rank < 8; rank++) {
      chips.add(blockProgram("allreduce hbm, r10, r9, f32, 8\n"
          + blockCollective("reducescatter", 8, rank) + blockCollective("allgather", 8, rank)));
    }
    MultiChipTiming.Report threaded = MultiChipTiming.run(chips, SOHU, Options.defaults(),
        noDims(8));
    MultiChipTiming.Report sym = MultiChipTiming.runSymmetric(chips.get(3), 8, SOHU,
        Options.defaults(), Map.of());
    assertEquals(3, threaded.collectives());
    assertEquals(sym.cycles(), threaded.cycles());
    long perChip = (2 * 7 * BLOCK * 4 + 7) / 8 + 2 * 7 * BLOCK * 4;
    assertEquals(8 * perChip, threaded.linkBytes());
    assertEquals(threaded.linkBytes(), sym.linkBytes());
  }

  @Test
  void collectivesOfDifferentKindsDoNotMeet() {
    SohuProgram scatters = blockProgram(blockCollective("reducescatter", 2, 0));
    SohuProgram gathers = blockProgram(blockCollective("allgather", 2, 1));
    Trap t = assertThrows(Trap.class, () -> MultiChipTiming.run(List.of(scatters, gathers), SOHU,
        Options.defaults(), noDims(2)));
    assertEquals(Trap.Kind.BAD_OPERAND, t.kind());
    assertTrue(t.getMessage().contains("collective #1: chip "), t.getMessage());
    assertTrue(t.getMessage().contains("(the k-th collective must be the same instruction on "
        + "every chip)"), t.getMessage());
  }

  /**
   * A LINK fence (no elements) after a reducescatter completes no earlier than the
   * reducescatter: a copy that waits on the fence starts after the sums' last latency.
   */
  @Test
  void aFenceCompletesAfterTheReducescatterBeforeIt() {
    String fenced = blockCollective("reducescatter", 8, 2)
        + "reducescatter hbm, 0, 0, 0, f32, 8, 0, signal=1\n"
        + "dma sram, r0, r0, hbm, r0+4096, r0, 65536, 1, wait=1\n";
    MultiChipTiming.Report r = MultiChipTiming.runSymmetric(blockProgram(fenced), 8, SOHU,
        Options.defaults(), Map.of());
    long scattered = 64 + (long) Math.ceil(7 * BLOCK * 4 / SOHU.linkBytesPerCycle())
        + 3 * SOHU.linkLatencyCycles();
    long copy = 64 + (long) Math.ceil(65536 / SOHU.hbmBytesPerCycle())
        + SOHU.hbmLatencyCycles();
    assertEquals(1, r.collectives(), "the fence meets no other chip");
    assertTrue(r.cycles() >= scattered + copy && r.cycles() <= scattered + copy + 8,
        r.cycles() + " cycles vs " + (scattered + copy));
  }
}
