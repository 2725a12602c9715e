package dev.sohuc.ir;

/**
 * Where an op came from in the user's model: an ONNX node name, an HF module path, or nothing.
 * Printed as {@code loc("...")} at the end of the op's line.
 */
public record Location(String text) {
  public static final Location UNKNOWN = new Location("");

  public Location {
    if (text == null) {
      text = "";
    }
  }

  public boolean isKnown() {
    return !text.isEmpty();
  }

  @Override
  public String toString() {
    return isKnown() ? text : "<unknown location>";
  }
}
