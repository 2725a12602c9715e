package dev.sohuc.isa;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.RecordComponent;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/** The table checks itself: bits, ranges, encodings and records. */
class InsnTableTest {

  /**
   * Pairs of mnemonics allowed to overlap in encoding, with the reason (Spike style). Empty:
   * every opcode is distinct. A listed pair that no longer overlaps fails the test.
   */
  private static final Map<Set<String>, String> OVERLAP_EXEMPTIONS = Map.of();

  @Test
  void everyBitAssignedOnceAndEveryRangeFits() {
    assertEquals(List.of(), InsnTable.problems());
  }

  @Test
  void noTwoInstructionsOverlap() {
    List<String> overlaps = new ArrayList<>();
    Set<Set<String>> seen = new java.util.HashSet<>();
    List<InsnDef> all = InsnTable.all();
    for (int i = 0; i < all.size(); i++) {
      for (int j = i + 1; j < all.size(); j++) {
        InsnDef a = all.get(i);
        InsnDef b = all.get(j);
        if (overlap(a, b)) {
          Set<String> pair = Set.of(a.mnemonic(), b.mnemonic());
          seen.add(pair);
          if (!OVERLAP_EXEMPTIONS.containsKey(pair)) {
            overlaps.add(a.mnemonic() + " and " + b.mnemonic());
          }
        }
      }
    }
    assertEquals(List.of(), overlaps, "instructions whose encodings overlap");
    for (Set<String> exempt : OVERLAP_EXEMPTIONS.keySet()) {
      assertTrue(seen.contains(exempt), "stale overlap exemption " + exempt + ": remove it");
    }
  }

  /** Two instructions overlap when some word matches the fixed bits (opcode, reserved) of both. */
  private static boolean overlap(InsnDef a, InsnDef b) {
    Word[] fa = fixed(a);
    Word[] fb = fixed(b);
    long loDiff = fa[0].lo() & fb[0].lo() & (fa[1].lo() ^ fb[1].lo());
    long hiDiff = fa[0].hi() & fb[0].hi() & (fa[1].hi() ^ fb[1].hi());
    return loDiff == 0 && hiDiff == 0;
  }

  /** {mask of fixed bits, their values}. */
  private static Word[] fixed(InsnDef d) {
    Word mask = new Word(0, 0);
    Word val = new Word(0, 0);
    for (Field f : d.fields()) {
      if (f.kind() == FieldKind.OPCODE || f.kind() == FieldKind.RESERVED) {
        for (int b = f.lo(); b <= f.hi(); b++) {
          mask = mask.withBits(b, 1, 1);
        }
        if (f.kind() == FieldKind.OPCODE) {
          val = val.withBits(f.lo(), f.width(), d.opcode());
        }
      }
    }
    return new Word[] {mask, val};
  }

  @Test
  void recordComponentsMatchTheTable() {
    Set<String> records = new TreeSet<>();
    for (Class<?> c : Insn.class.getPermittedSubclasses()) {
      records.add(c.getSimpleName());
    }
    Set<String> defs = new TreeSet<>();
    for (InsnDef d : InsnTable.all()) {
      defs.add(d.recordName());
      Class<? extends Insn> c = InsnCodec.recordOf(d);
      RecordComponent[] rc = c.getRecordComponents();
      List<Field> fields = d.operandFields();
      assertEquals(fields.size(), rc.length, d.mnemonic());
      for (int i = 0; i < rc.length; i++) {
        assertEquals(fields.get(i).javaName(), rc[i].getName(), d.mnemonic() + " component " + i);
        assertEquals(fields.get(i).javaType(), rc[i].getType(), d.mnemonic() + " component " + i);
      }
      assertEquals("waitTok", rc[rc.length - 2].getName());
      assertEquals("signalTok", rc[rc.length - 1].getName());
    }
    assertEquals(defs, records);
  }

  @Test
  void headerIsTheSameForEveryInstruction() {
    for (InsnDef d : InsnTable.all()) {
      assertEquals(0, d.field("opcode").lo());
      assertEquals(InsnDef.WAIT_LO, d.field("wait").lo(), d.mnemonic());
      assertEquals(InsnDef.SIGNAL_LO, d.field("signal").lo(), d.mnemonic());
    }
  }

  @Test
  void instructionCountIsSane() {
    int n = InsnTable.all().size();
    assertTrue(n >= 25 && n <= 45, n + " instructions");
  }
}
