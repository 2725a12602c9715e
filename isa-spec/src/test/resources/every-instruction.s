# Every instruction of the ISA at least once, plus every directive.
# Used by AsmRoundTripTest: asm -> .sohu -> disasm -> asm must give identical bytes.
.target "sohu-v1", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
.meta "compiler", "sohuc test"
.meta "options", "--quantize none"
.arg seq, 0
.arg "kv_len", 1
.arg "input_ids", 2, 16, "kv_len"
.symbol in, "input_ids", i32, [1, "seq"], 0x1000, 2048
.symbol out, "logits", f32, [1, "seq", 384], 0x10000, 786432
.symbol in, "past", f32, [1, 2, "past"@64, 16], 0xd0000, 8192
.equ TILE, 128
.equ HALF, TILE / 2
.equ EPS, 1.0e-5
.reg seq, r3

start:
    li       r1, TILE
    li       r2, -1
    li       r5, 0xffffffffffffffff
    ldarg    seq, 0
    ldarg    r4, 1, wait=0, signal=0
    ldarg    r4, 2, r5
    ldarg    r6, 2, r0, signal=1
    add      r1, r2, seq
    sub      r1, r2, r3
    mul      r1, r2, r3
    min      r1, zero, r3
    max      r1, r2, r3
    addi     r4, r4, -128
    muli     r6, r3, 256
    shli     r6, r3, 7
    shri     r6, r3, HALF >> 3
.debug "matmul_0", "model.onnx:node MatMul_12"
    dma      sram, r8, r9, hbm, r10+4096, r11, 256, TILE, wait=1
    dma      hbm, r8-16, r9, sram, r10, r11, 131071, r12+3, planes=r13+2, dst_pstride=r14, src_pstride=r15, signal=2
    gather   sram, r8, r9, hbm, r10, r11, 1536, r3, r12, idx64=1
    scatter  hbm, r8, r9, r10, sram, r11, r12, 256, r3, r13, idx64=1
    allreduce hbm, r10+4096, r9+2, bf16, 8, wait=1
    reducescatter sram, r11-8, r10+4096, r9+2, f32, 6, 5, signal=3
    reducescatter hbm, r11, r10, r9+65535, bf16, 8, 7, rows=r12+3, sstride=r13, dstride=r14
    allgather hbm, r11, r10, 1024, bf16, 64, 63, wait=3
    allgather sram, r11+64, r10, r9, f8e4m3, 2, 1, rows=1023, dstride=r15
    fork     stream0, fair_dma=1
    nop      wait=24
    halt
stream0:
    loop     seq, end_outer
        loop     4, end_inner
            mma      r20+0, r21, r22+0, r23, r24+0, r25, 128, 128, r26+64, bf16, tb=1, accumulate=1
            mma      r20-4096, r21, r22+4095, r23, r24, r25, 1, 1, 8191, i8, ta=1, wait=31, signal=31
end_inner:
        mma      r20, r21, r22, r23, r24, r25, 64, 32, r26, f32
        mma      r20, r21, r22, r23, r24, r25, 64, 32, r26, f8e4m3
        mma      r20, r21, r22, r23, r24, r25, 64, 32, r26, f8e5m2
        mma      r20, r21, r22, r23, r24, r25, 64, 32, r26, f16
end_outer:
    vbin     add, r8, r9, r10, r9, r11, r0, r12, r13, bf16, bcast=row
    vbin     add, r8, r9, r10, r9, r11, r9, r12, r13, f32, b_bf16=1
    vbin     pow, r8+511, r9, r10-512, r9, r11, r0, r12, r13, f32, bcast=scalar
    vbin     div, r8, r9, r10, r9, r11, r0, r12, r13, f16, bcast=col
    vbini    mul, r8, r9, r8, r9, 0.125, r12, r13, f32
    vbini    sub, r8, r9, r8, r9, -0.0, r12, r13, f32, rev=1
    vbini    max, r8, r9, r8, r9, -inf, r12, r13, f32
    vbini    min, r8, r9, r8, r9, 0x7fc00001, r12, r13, f32
    vun      gelu_erf, r8, r9, r8, r9, r12, r13, f32
    vun      gelu_tanh, r8, r9, r8, r9, r12, r13, bf16
    vun      exp, r8, r9, r8, r9, r12, r13, f32
    vun      none, r8, r9, r8, r9, r12, r13, i8
    vred     max, r14, r15, r8, r9, r12, r13, f32
    vred     mean, r14, r15, r8, r9, r12, r13, f32
    vfill    r8, r9, 0.0, r12, r13, bf16
    vfill    r8, r9, 3.4028235E38, r12, r13, f32
    vsel     r8, r9, r10, r11, r12, r9, r13, r0, r14, r15, f32, b_bcast=scalar
    vsel     r8+511, r9, r10-512, r11, r12, r9, r13, r9, r14, r15, bf16, a_bcast=col, b_bcast=row
    softmax  r8, r9, r8, r9, r12, r13, f32, scale=0.125, causal=1, diag=r16
    softmax  r8, r9, r8, r9, r12, r13, bf16, valid=r17
    softmax  r8, r9, r8, r9, r12, r13, f32, causal=1, diag=r16, window=r18
    softmax  r8, r9, r20+16, r21, r12, r13, f32, scale=0.125, causal=1, diag=r16, out_bf16=1, src_acc=1
    softmax  r8, r9, r20, r21, r12, r13, f32, causal=1, diag=r16, out_bf16=1, src_acc=1, sums=r22
    layernorm r8, r8, r9, r14, r15, r12, r13, f32, eps=1.0E-12
    layernorm r8, r8, r9, r14, r15, r12, r13, f32, eps=EPS
    rmsnorm  r8, r9, r8, r9, r14, r12, r13, bf16, eps=1.0E-5
    rope     half, r8, r9, r8, r9, r14, r15, r17, r16, r12, r13, f32
    rope     interleaved, r8, r9, r8, r9, r14, r15, r17, r16, r12, r13, bf16
    rope     half, r8, r9, r8, r9, r14, r15, r17, r16, r12, r13, f32, group=r7
    vglu     silu, r8, r9, r10, r9, r11, r9, r12, r13, bf16
    vglu     gelu_erf, r8, r9, r10, r9, r11, r9, r12, r13, f32
    cvt      r8, r9, i8, r10, r11, f32, r12, r13, scale=0.05, div=1
    cvt      r8, r9, f32, r10, r11, f8e4m3, r12, r13, mode=col, scale_vec=r14+16
    cvt      r8, r9, bf16, r10, r11, f32, r12, r13
    accrd    r8, r9, r20, r21, r12, r13, bf16, bias_bcast=row, bias=r14, act=gelu_tanh
    accrd    r8, r9, r20+8, r21, r12, r13, i32, acc_i32=1
    accrd    r8, r9, r20, r21, r12, r13, f32, acc_i32=1, scale=0.001, act=relu
    accdq    r8, r9, r20, r21, r12, r13, bf16, r14, r15
    accdq    r8+64, r9, r20+16, r21, r12, r13, f32, r14, r15, acc_i32=1, scale=0.5
    accglu   silu, r8, r9, r20, r22, r21, r12, r13, bf16
    accglu   gelu_tanh, r8+64, r9, r20+16, r22+16, r21, r12, r13, f32, row_scales=r14, col_scales=r15, acc_i32=1
    accwr    r20, r21, r8, r9, r12, r13, f32
    nop      wait=3, signal=4
    barrier
    halt
