package dev.sohuc.isa;

/** Which elements rotary embedding pairs up. */
public enum RopeMode implements AsmEnum {
  HALF("Rotate-half (GPT-NeoX, Llama): element c pairs with c + cols/2."),
  INTERLEAVED("Interleaved (GPT-J): element 2c pairs with 2c + 1.");

  private final String doc;

  RopeMode(String doc) {
    this.doc = doc;
  }

  @Override
  public String doc() {
    return doc;
  }
}
