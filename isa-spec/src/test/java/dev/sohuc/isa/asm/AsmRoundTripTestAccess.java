package dev.sohuc.isa.asm;

import java.io.IOException;

/** Lets tests in other packages read the shared test program. */
public final class AsmRoundTripTestAccess {
  private AsmRoundTripTestAccess() {}

  public static String everyInstruction() throws IOException {
    return AsmRoundTripTest.resource("every-instruction.s");
  }
}
