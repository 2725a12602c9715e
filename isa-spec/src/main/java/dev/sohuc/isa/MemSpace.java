package dev.sohuc.isa;

/** The memories a DMA can address. ACC is reached only by mma, accrd and accwr. */
public enum MemSpace implements AsmEnum {
  HBM("High-bandwidth memory: large, slow, byte addressed; holds weights, inputs, outputs and the argument block."),
  SRAM("On-chip scratchpad, byte addressed, software managed; operand memory of the MXU and VPU.");

  private final String doc;

  MemSpace(String doc) {
    this.doc = doc;
  }

  @Override
  public String doc() {
    return doc;
  }
}
