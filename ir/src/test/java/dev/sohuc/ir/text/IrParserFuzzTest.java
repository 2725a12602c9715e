package dev.sohuc.ir.text;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.sohuc.ir.IrException;
import dev.sohuc.ir.Module;
import dev.sohuc.ir.Verifier;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Timeout;

/**
 * Jazzer fuzz target for the IR text parser: any text either parses to a module that verifies and
 * prints to text that parses back to the same printout, or is refused with a one-line
 * {@link IrException}. Without JAZZER_FUZZ=1 it replays the inputs under
 * src/test/resources/dev/sohuc/ir/text/IrParserFuzzTestInputs.
 */
class IrParserFuzzTest {

  @Timeout(value = 10, unit = TimeUnit.SECONDS)
  @FuzzTest(maxDuration = "60s")
  void parse(byte[] data) {
    String text = new String(data, StandardCharsets.UTF_8);
    Module m;
    try {
      m = IrParser.parse(text, "fuzz.ir");
    } catch (IrException e) {
      if (e.getMessage() == null || !e.getMessage().startsWith("fuzz.ir:")
          || e.getMessage().contains("\n")) {
        throw new AssertionError("not a one-line message naming the file: " + e.getMessage(), e);
      }
      return;
    }
    new Verifier().verify(m);
    String printed = IrPrinter.print(m);
    String again = IrPrinter.print(IrParser.parse(printed, "printed.ir"));
    if (!again.equals(printed)) {
      throw new AssertionError("the printout does not round-trip:\n" + printed + "\n---\n" + again);
    }
  }
}
