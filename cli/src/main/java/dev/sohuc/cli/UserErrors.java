package dev.sohuc.cli;

import picocli.CommandLine;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.NoSuchFileException;

/**
 * Turns exceptions into one-line messages and exit codes. Errors in the user's model, program
 * or files exit with 1 and no stack trace; anything else is a bug in sohuc and says so.
 */
final class UserErrors implements CommandLine.IExecutionExceptionHandler {

  static int exitCode(Throwable t) {
    return t instanceof CommandLine.ParameterException ? Sohuc.EXIT_USAGE : Sohuc.EXIT_BAD_INPUT;
  }

  @Override
  public int handleExecutionException(Exception e, CommandLine cmd, CommandLine.ParseResult parsed) {
    boolean verbose = cmd.getCommandSpec().root().userObject() instanceof Sohuc root && root.verbose;
    var err = cmd.getErr();
    if (isUserError(e)) {
      err.println("error: " + message(e));
    } else {
      err.println("internal error (a bug in sohuc, please report it): " + e);
    }
    if (verbose) {
      e.printStackTrace(err);
    } else if (!isUserError(e)) {
      err.println("run again with --verbose for the stack trace");
    }
    err.flush();
    return Sohuc.EXIT_BAD_INPUT;
  }

  /** Exceptions whose message is meant for the user: each module's own error type, and I/O. */
  static boolean isUserError(Throwable e) {
    return e instanceof UserException
        || e instanceof dev.sohuc.ir.IrException
        || e instanceof dev.sohuc.backend.BackendException
        || e instanceof dev.sohuc.isa.IsaException
        || e instanceof dev.sohuc.emu.EmulatorException  // traps included (Trap extends it)
        || e instanceof dev.sohuc.onnx.OnnxImportException
        || e instanceof dev.sohuc.passes.quant.CalibrationException
        || e instanceof dev.sohuc.passes.tp.ShardException
        || e instanceof IOException
        || e instanceof UncheckedIOException;
  }

  static String message(Throwable e) {
    if (e instanceof NoSuchFileException nf) {
      return nf.getFile() + ": no such file";
    }
    if (e instanceof java.nio.file.FileAlreadyExistsException fe) {
      // what Files.createDirectories says of an output folder that is a file
      return fe.getFile() + ": exists and is not a folder";
    }
    if (e instanceof UncheckedIOException u) {
      return message(u.getCause());
    }
    if (e instanceof IOException && e.getMessage() == null) {
      return e.getClass().getSimpleName();
    }
    return e.getMessage();
  }
}
