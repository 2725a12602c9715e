package dev.sohuc.emu;

import java.util.Map;

/**
 * What a functional run produced.
 *
 * @param outputs every output symbol of the program, by name, in symbol-table order
 * @param dims the value of every symbolic dimension (given or implied by the input shapes)
 * @param instructions instructions issued, loop iterations included
 */
public record FunctionalResult(Map<String, HostTensor> outputs, Map<String, Long> dims,
    long instructions) {
  public FunctionalResult {
    outputs = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(outputs));
    dims = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(dims));
  }
}
