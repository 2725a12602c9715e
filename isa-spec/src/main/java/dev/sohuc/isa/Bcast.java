package dev.sohuc.isa;

/** How a second operand (or a bias) is broadcast over a rows x cols tile. */
public enum Bcast implements AsmEnum {
  NONE("A full rows x cols tile: element (i, j)."),
  ROW("One row vector used for every row: element j."),
  COL("One value per row (a column vector): element i, at row stride."),
  SCALAR("One value for the whole tile: element 0.");

  private final String doc;

  Bcast(String doc) {
    this.doc = doc;
  }

  @Override
  public String doc() {
    return doc;
  }
}
