package dev.sohuc.cli;

import dev.sohuc.passes.PassManager;
import dev.sohuc.passes.PassPipelines;
import dev.sohuc.passes.PassRegistry;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/** The IR-printing options of {@code opt} and {@code compile} (a picocli mixin). */
final class PrintIrOptions {

  @Option(names = "--print-ir-after-all", description = "Print the IR after every pass.")
  boolean all;

  @Option(names = "--print-ir-after", paramLabel = "PASS", split = ",",
      description = "Print the IR after each run of the named passes (repeatable).")
  List<String> after = new ArrayList<>();

  boolean any() {
    return all || !after.isEmpty();
  }

  /** An unknown pass name is a usage error, not an option that silently prints nothing. */
  void checkNames(CommandLine command) {
    for (String name : after) {
      if (PassRegistry.lookup(name).isEmpty()) {
        throw new CommandLine.ParameterException(command,
            new PassPipelines.UnknownPassException(name).getMessage());
      }
    }
  }

  void apply(PassManager pm, PrintWriter out) {
    if (all) {
      pm.printIrAfterAll(out);
    } else if (!after.isEmpty()) {
      pm.printIrAfter(Set.copyOf(after), out);
    }
  }
}
