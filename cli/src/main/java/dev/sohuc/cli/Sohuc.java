package dev.sohuc.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;

/** The {@code sohuc} entry point: registers the subcommands and maps failures to exit codes. */
@Command(
    name = "sohuc",
    mixinStandardHelpOptions = true,
    versionProvider = Sohuc.Version.class,
    description = "Compiles transformer models to Sohu-style microcode and runs it on an emulator.",
    subcommands = {
      IrCommand.class,
      AsmCommand.class, DisasmCommand.class, InspectCommand.class,
      CommandLine.HelpCommand.class,
      CompileCommand.class,
      OptCommand.class,
      RunCommand.class, TestCommand.class,
      BenchCommand.class,
    })
public final class Sohuc implements Runnable {

  /** Exit status when the model, program or input file is wrong. */
  public static final int EXIT_BAD_INPUT = 1;
  /** Exit status when the command line itself is wrong. */
  public static final int EXIT_USAGE = 2;

  @Option(names = "--verbose", scope = CommandLine.ScopeType.INHERIT,
      description = "Print stack traces and extra detail on errors.")
  boolean verbose;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }

  public static void main(String[] args) {
    PrintWriter out = new PrintWriter(System.out, true);
    int code = execute(args, out, new PrintWriter(System.err, true));
    out.flush();  // print() without a newline is not auto-flushed (compile --report)
    System.exit(code);
  }

  /** Runs one command line with the given streams and returns its exit code; used by tests too. */
  public static int execute(String[] args, PrintWriter out, PrintWriter err) {
    CommandLine cli = new CommandLine(new Sohuc());
    cli.setOut(out);
    cli.setErr(err);
    cli.setExitCodeExceptionMapper(UserErrors::exitCode);
    cli.setExecutionExceptionHandler(new UserErrors());
    try {
      return cli.execute(args);
    } catch (OutOfMemoryError e) {
      err.println("error: the host ran out of memory (Java heap); give the JVM more with "
          + "SOHUC_JAVA_OPTS=-Xmx..., or ask for less (shorter sequences, fewer requests)");
      err.flush();
      return EXIT_BAD_INPUT;
    }
  }

  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String version = Sohuc.class.getPackage().getImplementationVersion();
      return new String[] {"sohuc " + (version == null ? "development build" : version)};
    }
  }
}
