package dev.sohuc.passes;

import dev.sohuc.ir.Module;
import dev.sohuc.ir.text.IrParser;
import dev.sohuc.ir.text.IrPrinter;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Runs {@code passes/src/test/resources/<pass>.ir} for every registered pass: each case is
 * parsed, run through that one pass (verifying after it), printed and matched against its CHECK
 * lines; then the same case is run again under {@link MeaningCheck}, which compares the
 * interpreter's outputs before and after the pass.
 */
class PassFileCheckTest {
  private static final long SEED = 20240611L;

  @TestFactory
  List<DynamicTest> everyPassHasCheckedCases() {
    List<DynamicTest> tests = new ArrayList<>();
    for (String pass : PassRegistry.names()) {
      for (FileCheck.Case c : FileCheck.cases(pass + ".ir")) {
        tests.add(DynamicTest.dynamicTest(c.toString(), () -> runCase(pass, c)));
      }
    }
    return tests;
  }

  private static void runCase(String pass, FileCheck.Case c) {
    Module m = IrParser.parse(c.text(), c.file());
    new PassManager(PassPipelines.parse(pass)).run(m);
    FileCheck.match(c, IrPrinter.print(m));
    // The printed result must parse again, and meaning must be kept.
    IrParser.parse(IrPrinter.print(m), c.file() + " (after " + pass + ")");
    Module fresh = IrParser.parse(c.text(), c.file());
    MeaningCheck.assertPreservesMeaning(fresh,
        mod -> new PassManager(PassPipelines.parse(pass)).run(mod), SEED + c.firstLine());
  }

  @org.junit.jupiter.api.Test
  void unknownPassNamesTheKnownOnes() {
    var e = org.junit.jupiter.api.Assertions.assertThrows(PassPipelines.UnknownPassException.class,
        () -> PassPipelines.parse("canonicalize,fuse-everything"));
    org.junit.jupiter.api.Assertions.assertTrue(e.getMessage().contains("fuse-everything"));
    org.junit.jupiter.api.Assertions.assertTrue(e.getMessage().contains("fuse-attention"));
  }

  @org.junit.jupiter.api.Test
  void everyPassNameIsKebabCaseAndUnique() {
    Set<String> names = Set.copyOf(PassRegistry.names());
    org.junit.jupiter.api.Assertions.assertEquals(PassRegistry.names().size(), names.size());
    names.forEach(n -> org.junit.jupiter.api.Assertions.assertTrue(n.matches("[a-z]+(-[a-z]+)*"), n));
  }
}
