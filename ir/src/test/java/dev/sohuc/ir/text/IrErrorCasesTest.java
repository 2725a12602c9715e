package dev.sohuc.ir.text;

import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.util.stream.Stream;

/** The table-driven error tests; see {@link ErrorCases} for the file format. */
class IrErrorCasesTest {
  /** Syntax and structure: what the parser itself rejects. */
  @TestFactory
  Stream<DynamicTest> parseErrors() {
    return ErrorCases.tests("parse-errors.ir");
  }

  /** Every verifier rule and every op's attribute and shape rule. */
  @TestFactory
  Stream<DynamicTest> verifyErrors() {
    return ErrorCases.tests("verify-errors.ir");
  }
}
