package dev.sohuc.isa;

/** Where cvt takes its scale from. */
public enum ScaleMode implements AsmEnum {
  TENSOR("The f32 immediate `scale` for every element (per-tensor)."),
  ROW("An f32 vector at `scale_vec`: element i scales row i (per-row, e.g. per-token)."),
  COL("An f32 vector at `scale_vec`: element j scales column j (per-channel).");

  private final String doc;

  ScaleMode(String doc) {
    this.doc = doc;
  }

  @Override
  public String doc() {
    return doc;
  }
}
