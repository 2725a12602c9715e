package dev.sohuc.cli;

import java.io.PrintWriter;
import java.io.StringWriter;

/** One in-process {@code sohuc} invocation: its exit code and what it wrote to stdout and stderr. */
record CliResult(int code, String out, String err) {

  static CliResult run(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = Sohuc.execute(args, new PrintWriter(out, true), new PrintWriter(err, true));
    return new CliResult(code, out.toString(), err.toString());
  }
}
