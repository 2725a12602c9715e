package dev.sohuc.emu;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import dev.sohuc.isa.Engine;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;

/**
 * Writes a Chrome trace-event JSON file (ui.perfetto.dev and chrome://tracing open it): one
 * process for the chip, one thread track per engine named by {@code thread_name} metadata, one
 * complete ("X") slice per instruction with its mnemonic and pc, times in microseconds of
 * simulated time. After {@code maxEvents} slices it stops recording and says so in an instant
 * event and in {@code otherData}.
 */
final class TraceWriter implements AutoCloseable {
  private final JsonGenerator json;
  private final Path file;
  private final double usPerCycle;
  private final long maxEvents;
  private long events;
  private boolean truncated;
  private long lastTs;

  TraceWriter(Path file, MachineDescription target, String programName, long maxEvents) {
    this.file = file;
    this.usPerCycle = 1e6 / target.clockHz();
    this.maxEvents = maxEvents;
    try {
      json = new JsonFactory().createGenerator(file.toFile(), JsonEncoding.UTF8);
      json.writeStartObject();
      json.writeStringField("displayTimeUnit", "ns");
      json.writeArrayFieldStart("traceEvents");
      meta("process_name", -1, "name", programName + " on " + target.name() + " (timing model)");
      for (Engine e : Engine.values()) {
        meta("thread_name", e.ordinal(), "name", e.name());
        meta("thread_sort_index", e.ordinal(), "sort_index", e.ordinal());
      }
    } catch (IOException e) {
      throw new EmulatorException("cannot write the trace " + file + ": " + e.getMessage());
    }
  }

  private void meta(String name, int tid, String key, Object value) throws IOException {
    json.writeStartObject();
    json.writeStringField("name", name);
    json.writeStringField("ph", "M");
    json.writeNumberField("pid", 1);
    if (tid >= 0) {
      json.writeNumberField("tid", tid);
    }
    json.writeObjectFieldStart("args");
    if (value instanceof Integer i) {
      json.writeNumberField(key, i);
    } else {
      json.writeStringField(key, value.toString());
    }
    json.writeEndObject();
    json.writeEndObject();
  }

  /** One instruction on engine {@code tid}: starts at cycle {@code start}, lasts {@code cycles}. */
  void slice(int tid, String mnemonic, int pc, long start, long cycles) {
    if (truncated) {
      return;
    }
    try {
      if (events >= maxEvents) {
        truncated = true;
        json.writeStartObject();
        json.writeStringField("name", "trace truncated after " + maxEvents + " slices");
        json.writeStringField("ph", "i");
        json.writeStringField("s", "g");
        json.writeNumberField("pid", 1);
        json.writeNumberField("tid", 0);
        json.writeNumberField("ts", start * usPerCycle);
        json.writeEndObject();
        return;
      }
      events++;
      lastTs = Math.max(lastTs, start);
      json.writeStartObject();
      json.writeStringField("name", mnemonic);
      json.writeStringField("ph", "X");
      json.writeNumberField("pid", 1);
      json.writeNumberField("tid", tid);
      json.writeNumberField("ts", start * usPerCycle);
      json.writeNumberField("dur", cycles * usPerCycle);
      json.writeObjectFieldStart("args");
      json.writeNumberField("pc", pc);
      json.writeNumberField("cycles", cycles);
      json.writeEndObject();
      json.writeEndObject();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  long events() {
    return events;
  }

  boolean truncated() {
    return truncated;
  }

  private boolean closed;

  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    try {
      json.writeEndArray();
      json.writeObjectFieldStart("otherData");
      json.writeNumberField("slices", events);
      json.writeBooleanField("truncated", truncated);
      json.writeNumberField("max_slices", maxEvents);
      json.writeEndObject();
      json.writeEndObject();
      json.close();
    } catch (IOException e) {
      throw new EmulatorException("cannot write the trace " + file + ": " + e.getMessage());
    }
  }
}
