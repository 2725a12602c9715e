package dev.sohuc.isa.asm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.sohuc.isa.IsaException;
import org.junit.jupiter.api.Test;

/** Every error path of the assembler, with its exact message. */
class AssemblerErrorTest {

  private static String error(String source) {
    return assertThrows(IsaException.class, () -> Assembler.assemble(source, "t.s")).getMessage();
  }

  @Test
  void unknownMnemonic() {
    assertEquals("t.s:2:3: unknown mnemonic 'mmx' (in \"mmx r1\")", error("halt\n  mmx r1\n"));
  }

  @Test
  void operandOutOfRange() {
    assertEquals("t.s:1:29: operand 'm' of mma: 300 is out of range 1..128 (in \"mma r1, r2, r3, "
        + "r4, r5, r6, 300, 8, 8, bf16\")",
        error("mma r1, r2, r3, r4, r5, r6, 300, 8, 8, bf16"));
    assertEquals("t.s:1:14: operand 'imm' of addi: 4294967296 is out of range "
        + "-2147483648..2147483647 (in \"addi r1, r2, 1 << 32\")", error("addi r1, r2, 1 << 32"));
    assertEquals("t.s:1:5: operand 'acc' of mma (offset): 5000 is out of range -4096..4095 (in "
        + "\"mma r1+5000, r2, r3, r4, r5, r6, 8, 8, 8, bf16\")",
        error("mma r1+5000, r2, r3, r4, r5, r6, 8, 8, 8, bf16"));
  }

  /** A symbol reserves at least the bytes its shape takes (a symbolic dim at its capacity). */
  @Test
  void aSymbolSmallerThanItsShape() {
    assertEquals("t.s:1:46: symbol y of bf16 [past@100, 4] needs 800 bytes, more than the 16 it "
        + "reserves (in \".symbol out, \"y\", bf16, [\"past\"@100, 4], 64, 16\")",
        error(".symbol out, \"y\", bf16, [\"past\"@100, 4], 64, 16\nhalt\n"));
    assertEquals("t.s:1:52: symbol x of f32 [4611686018427387904, 4] needs more than 2^63 - 1 "
        + "bytes, more than the 16 it reserves (in \".symbol in, \"x\", f32, "
        + "[4611686018427387904, 4], 0, 16\")",
        error(".symbol in, \"x\", f32, [4611686018427387904, 4], 0, 16\nhalt\n"));
  }

  /** Constant arithmetic is exact in 64 bits: what Java would wrap or take mod 64 is refused. */
  @Test
  void constantArithmeticThatOverflowsIsRefused() {
    assertEquals("t.s:1:14: value of A: a shift by 64, outside 0..63 (in \".equ A, 1 << 64\")",
        error(".equ A, 1 << 64\nhalt\n"));
    assertEquals("t.s:1:9: value of A: 3 << 62 overflows 64 bits (in \".equ A, 3 << 62\")",
        error(".equ A, 3 << 62\nhalt\n"));
    assertEquals("t.s:1:9: value of A: 4611686018427387904 * 4 overflows 64 bits (in \".equ A, "
        + "4611686018427387904 * 4\")", error(".equ A, 4611686018427387904 * 4\nhalt\n"));
    assertEquals("t.s:1:9: value of A: (-9223372036854775807 - 1) / -1 overflows 64 bits (in "
        + "\".equ A, (-9223372036854775807 - 1) / -1\")",
        error(".equ A, (-9223372036854775807 - 1) / -1\nhalt\n"));
    assertEquals("t.s:1:9: value of A: 5 - -9223372036854775807 overflows 64 bits (in \".equ A, "
        + "5 - -9223372036854775807 - 2\")", error(".equ A, 5 - -9223372036854775807 - 2\nhalt\n"));
    assertEquals("t.s:1:14: operand 'imm' of addi: -(-9223372036854775807 - 1) overflows 64 bits "
        + "(in \"addi r1, r2, -(-9223372036854775807 - 1)\")",
        error("addi r1, r2, -(-9223372036854775807 - 1)\nhalt\n"));
  }

  /** A collective's group size, rank and element type are checked against the table. */
  @Test
  void collectiveOperandsOutOfRange() {
    assertEquals("t.s:1:37: operand 'chips' of reducescatter: 0 is out of range 1..64 (in "
        + "\"reducescatter hbm, r1, r2, r3, f32, 0, 0\")",
        error("reducescatter hbm, r1, r2, r3, f32, 0, 0"));
    assertEquals("t.s:1:33: operand 'chips' of allgather: 65 is out of range 1..64 (in "
        + "\"allgather hbm, r1, r2, r3, f32, 65, 0\")",
        error("allgather hbm, r1, r2, r3, f32, 65, 0"));
    assertEquals("t.s:1:38: operand 'rank' of allgather: 64 is out of range 0..63 (in "
        + "\"allgather hbm, r1, r2, r3, bf16, 64, 64\")",
        error("allgather hbm, r1, r2, r3, bf16, 64, 64"));
    assertEquals("t.s:1:32: operand 'dtype' of reducescatter: f8e4m3 is not allowed here (one of "
        + "f32, bf16) (in \"reducescatter hbm, r1, r2, r3, f8e4m3, 8, 0\")",
        error("reducescatter hbm, r1, r2, r3, f8e4m3, 8, 0"));
    assertEquals("t.s:1:24: operand 'elems' of allgather (immediate part): 65536 is out of range "
        + "0..65535 (in \"allgather hbm, r1, r2, 65536, f32, 8, 0\")",
        error("allgather hbm, r1, r2, 65536, f32, 8, 0"));
    assertEquals("t.s:1:48: operand 'rows' of reducescatter (immediate part): 1024 is out of "
        + "range 0..1023 (in \"reducescatter hbm, r1, r2, r3, f32, 8, 0, rows=1024\")",
        error("reducescatter hbm, r1, r2, r3, f32, 8, 0, rows=1024"));
  }

  @Test
  void unknownRegister() {
    assertEquals("t.s:1:13: operand 'rs2' of add: unknown register 'r32' (registers are r0..r31) "
        + "(in \"add r1, r2, r32\")", error("add r1, r2, r32"));
  }

  @Test
  void wrongKind() {
    assertEquals("t.s:1:9: operand 'rs1' of add: expected a register r0..r31, got '5' (in \"add "
        + "r1, 5, r3\")", error("add r1, 5, r3"));
    assertEquals("t.s:1:8: operand 'imm' of li: expected an integer, got a register (in \"li r1, "
        + "r2\")", error("li r1, r2"));
    assertEquals("t.s:1:8: operand 'imm' of li: expected an integer, got the float 1.5 (in \"li "
        + "r1, 1.5\")", error("li r1, 1.5"));
    assertEquals("t.s:1:38: operand 'dtype' of mma: i32 is not allowed here (one of f32, bf16, f16,"
        + " f8e4m3, f8e5m2, i8) (in \"mma r1, r2, r3, r4, r5, r6, 8, 8, 8, i32\")",
        error("mma r1, r2, r3, r4, r5, r6, 8, 8, 8, i32"));
    assertEquals("t.s:1:6: operand 'op' of vbin: expected one of add, sub, mul, div, max, min, "
        + "pow, ge, got 'xor' (in \"vbin xor, r1, r1, r1, r1, r1, r1, r1, r1, f32\")",
        error("vbin xor, r1, r1, r1, r1, r1, r1, r1, r1, f32"));
    assertEquals("t.s:1:10: operand 'dst' of vfill: an address or count takes one register (in "
        + "\"vfill r1+r2, r3, 0.0, r4, r5, f32\")", error("vfill r1+r2, r3, 0.0, r4, r5, f32"));
  }

  @Test
  void operandCountAndKeywords() {
    assertEquals("t.s:1:9: missing operand 'rs2': add takes 3 (rd, rs1, rs2) (in \"add r1, r2\")",
        error("add r1, r2"));
    assertEquals("t.s:1:17: too many operands: add takes 3 (rd, rs1, rs2) and then keywords (in "
        + "\"add r1, r2, r3, r4\")", error("add r1, r2, r3, r4"));
    assertEquals("t.s:1:6: halt has no keyword operand 'foo' (keywords: wait, signal) (in \"halt "
        + "foo=1\")", error("halt foo=1"));
    assertEquals("t.s:1:17: positional operand after keyword operands (in \"add r1, wait=1, "
        + "r3\")", error("add r1, wait=1, r3"));
    assertEquals("t.s:1:7: missing operand 'index': ldarg takes 3 (rd, index, [rs]) (in "
        + "\"ldarg r1\")", error("ldarg r1"));
    assertEquals("t.s:1:18: too many operands: ldarg takes 3 (rd, index, [rs]) and then keywords "
        + "(in \"ldarg r1, 0, r2, r3\")", error("ldarg r1, 0, r2, r3"));
    assertEquals("t.s:1:14: operand 'rs' of ldarg: expected a register r0..r31, got '4' (in "
        + "\"ldarg r1, 0, 4\")", error("ldarg r1, 0, 4"));
    assertEquals("t.s:1:14: operand 'wait' of halt given twice (in \"halt wait=1, wait=2\")",
        error("halt wait=1, wait=2"));
    assertEquals("t.s:1:11: operand 'wait' of halt: 32 is out of range 0..31 (in \"halt "
        + "wait=32\")", error("halt wait=32"));
  }

  @Test
  void namesAndDirectives() {
    assertEquals("t.s:1:8: operand 'imm' of li: unknown name 'N' (in \"li r1, N\")",
        error("li r1, N"));
    assertEquals("t.s:2:1: 'a' is already defined (in \"a: halt\")", error("a: nop\na: halt"));
    assertEquals("t.s:1:6: 'r3' is a register or reserved name (in \".equ r3, 1\")",
        error(".equ r3, 1\nhalt"));
    assertEquals("t.s:1:1: unknown directive .org (known: .equ, .reg, .target, .meta, .arg, "
        + ".symbol, .constfile, .debug) (in \".org 5\")", error(".org 5\nhalt"));
    assertEquals("t.s:1:1: the program has no instructions", error("# nothing\n"));
    assertEquals("t.s:1:32: capacity 0 is not positive (in \".symbol in, \"kv\", f32, [\"past\"@0, "
        + "16], 0x1000, 64\")", error(".symbol in, \"kv\", f32, [\"past\"@0, 16], 0x1000, 64\nhalt"));
  }

  @Test
  void argumentSlots() {
    assertEquals("t.s:1:1: .arg takes 2 arguments (a dim: name, index) or 4 (an array: input "
        + "name, index, capacity, below), got 3 (in \".arg pos, 0, 4\")",
        error(".arg pos, 0, 4\nhalt"));
    assertEquals("t.s:1:14: argument array capacity 0 is out of range 1..65536 (in \".arg pos, "
        + "0, 0, past\")", error(".arg pos, 0, 0, past\nhalt"));
    assertEquals("t.s:1:11: argument index 65530 with 8 words does not fit the 65536-word "
        + "argument block (in \".arg pos, 65530, 8, past\")",
        error(".arg pos, 65530, 8, past\nhalt"));
    assertEquals("t.s:2:11: argument pos (words 1..4) overlaps argument past (word 3) (in \".arg "
        + "pos, 1, 4, past\")", error(".arg past, 3\n.arg pos, 1, 4, past\nhalt"));
    assertEquals("t.s:2:6: argument past defined twice (in \".arg \"past\", 1\")",
        error(".arg past, 0\n.arg \"past\", 1\nhalt"));
  }

  @Test
  void syntaxError() {
    assertEquals("t.s:1:9: syntax error: extraneous input ',' expecting {'(', '-', '+', '~', FLOAT,"
        + " INT, IDENT} (in \"add r1, , r2\")", error("add r1, , r2"));
  }

  /** Deep nesting is refused before the parser and the evaluator recurse into it. */
  @Test
  void deeplyNestedExpression() {
    String deep = "(".repeat(100_000) + "1" + ")".repeat(100_000);
    assertEquals("t.s:2:264: more than 256 operators and parentheses on one line; split the expression"
        + " with .equ (in \"li r1, " + "(".repeat(73) + "...\")", error("halt\nli r1, " + deep + "\n"));
    String chain = "1" + "+1".repeat(200_000);
    assertEquals("t.s:1:521: more than 256 operators and parentheses on one line; split the expression"
        + " with .equ (in \"li r1, " + chain.substring(0, 73) + "...\")", error("li r1, " + chain));
    String negated = "-".repeat(100_000) + "1";
    assertEquals("t.s:1:264: more than 256 operators and parentheses on one line; split the expression"
        + " with .equ (in \"li r1, " + "-".repeat(73) + "...\")", error("li r1, " + negated));
  }

  @Test
  void labelsCountLoopBodies() {
    var words = Assembler.assembleCode("loop 3, end\n nop\n nop\nend: halt\n", "t.s");
    assertEquals("loop     3, 2", Disassembler.format(words.get(0)));
  }

  /** A "string" or [shape] where a directive takes a number was an internal error. */
  @Test
  void directiveNumbersGivenAsStringsOrShapes() {
    assertEquals("t.s:1:11: expected a number or a name, got '\"x\"' (in \".arg seq, \"x\"\")",
        error(".arg seq, \"x\"\nhalt"));
    assertEquals("t.s:1:9: expected a number or a name, got '[1]' (in \".equ A, [1]\")",
        error(".equ A, [1]\nhalt"));
    assertEquals("t.s:1:18: expected a number or a name, got '\"f32\"' (in \".symbol in, \"x\", "
        + "\"f32\", [1], 0, 4\")", error(".symbol in, \"x\", \"f32\", [1], 0, 4\nhalt"));
    assertEquals("t.s:1:12: expected a number or a name, got '\"4096\"' (in \".constfile "
        + "\"4096\", 4, \"" + "0".repeat(57) + "...\")",
        error(".constfile \"4096\", 4, \"" + "0".repeat(64) + "\", \"c.bin\"\nhalt"));
  }
}
