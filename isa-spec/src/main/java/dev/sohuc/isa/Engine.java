package dev.sohuc.isa;

/** The units that execute instructions; each non-control engine has its own in-order queue. */
public enum Engine {
  /** Control unit: scalar registers, hardware loops, issue of every other instruction. */
  CTRL,
  /** Strided 2-D/3-D block copies between HBM and SRAM. */
  DMA,
  /** Matrix unit: tile matrix multiply-accumulate into ACC. */
  MXU,
  /** Vector unit: elementwise, reductions and fused row functions on SRAM tiles, ACC read-out. */
  VPU,
  /**
   * Chip-to-chip link: collectives over the interconnect, beside the DMA engine (it reads and
   * writes HBM too), so a tensor-parallel sum overlaps the next tiles' copies and compute.
   */
  LINK
}
