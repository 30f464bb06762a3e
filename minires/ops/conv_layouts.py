"""The unfold layouts of conv2d: one class per way of laying out cols, chosen per layer by ``choose_layout``.

Notation as in conv.py: N, C, H, W (input), OC output channels, G groups of Cg = C/G input and OCg = OC/G
output channels, KH, KW (kernel), OH, OW (output), K = Cg*KH*KW, M = n*OH*OW for a chunk of n images.

A layout turns the convolution of a chunk of images into matrix products. Each one answers the same
questions, so that conv.py's loops (``conv2d_forward``, ``conv2d_weight_grad``, ``conv2d_input_grad``,
``conv2d_input_and_weight_grad``) are written once:

    weight_matrix(w)           w as the matrix W of the products, (G, OCg, K) or (G, OCg, T*Cg)
    unfold(x)                  cols of a chunk of images (im2col.py)
    product(W, cols, n, out)   y of the chunk, (n, OC, OH, OW): into out (y's chunk) where it can go there
    output_grad(g)             the chunk's g = dL/dy as dY, in the layout of the product
    weight_grad(dY, cols)      the chunk's share of dW, in W's layout; weight_from_matrix(dW) -> dw
    fold(W, dY, n)             the chunk's dx = fold(dcols), fold the adjoint of unfold (has_fold)

- ``ChannelsFirst`` ("nchw"): the textbook im2col, cols (G, K, M), one row per (c, kh, kw); the reference,
  and the unfold of strided layers with few channels.
- ``ShiftedRows`` ("rows"): channels first, unfolded by shifting the images laid end to end (one contiguous
  copy per channel and tap instead of one per image row). ``StackedRows`` ("rows_stacked"): the same with the
  taps of one kernel row only, the others being shifts of the product's rows. Stride 1 only, and it has no
  fold: its dx is always the flipped-kernel convolution (conv.py ``conv2d_input_grad``), the faster way for
  every stride-1 layer, so ``choose_layout`` picks them only where dx is a convolution.
- ``ChannelsLast`` ("nhwc"): cols (G, M, T*Cg), one row per output pixel and the channels innermost,
  with only the T live taps; its output (and dx) is an NCHW view of an NHWC array.
- ``Winograd`` ("winograd", winograd.py): not an unfold but Winograd's F(2x2, 3x3), 16 products of the
  transformed input tiles by the transformed kernel, channels last. 3x3 kernels with stride 1, no
  dilation and one group only; no fold (dx is the flipped-kernel convolution, as for rows).
  ``Winograd3`` ("winograd3") and ``Winograd4`` ("winograd4"): the same with F(3x3, 3x3) and F(4x4, 3x3),
  25 products per 3x3 output tile and 36 per 4x4 tile.
- ``LiveTaps`` ("taps"): no unfold either: one product per kernel tap, over the block of output pixels
  for which that tap reads the image, channels last; so the padding's zeros are never multiplied (on a
  3x3 output with padding 1, 32 of the 81 tap-pixel pairs are zeros). Any stride, dilation and groups;
  its fold scatter-adds each tap's dx block.

The choice (``choose_layout``): on the CPU, for the 3x3 stride-1 layers of one group with 32 (16 for dx's
flipped convolution) to 128 (F(4x4, 3x3)) or 256 (F(3x3, 3x3)) channels, Winograd's larger tiles, the one that
takes the fewest products per output pixel (``_large_tiles``: 3x3 tiles on 3x3, 6x6 and 9x9 outputs, for
example, 4x4 tiles on 4x4, 7x7, 8x8 and 10x10 to 16x16; neither on 1x1, 2x2 and 5x5), where there are at least
as many tiles as channels and fewer than 4 products a pixel; then the live taps for the layers of one group
with a kernel of more than one tap and, with stride 1, an output of at most TAPS_MAX_OUTPUT (7) pixels on a
side, at most TAPS_MAX_OUTPUT_OVER_WINOGRAD (4) where Winograd would take the layer, or, strided, an output of
2x2 to TAPS_MAX_STRIDED_OUTPUT (4x4) pixels from TAPS_MIN_STRIDED_CHANNELS (64) input channels; then channels
first for a layer whose weights are more than WEIGHT_HEAVY_RATIO (6) times its input, every kernel tap live
(the many-channel layers on a few pixels: below); then Winograd for the 3x3 stride-1 layers with at least
WINOGRAD_MIN_CHANNELS (128) channels in and out and an output of 2x2 pixels or more; then channels last when a
pixel's Cg channels make a longer run than an output row of OW values (Cg >= 4*OW: the small images of the
late stages); otherwise shifted rows when the layer's dx is a convolution (stride 1), their kernel rows
stacked where a row holds enough values (``_rows``), else channels first. ``conv_layout``
(minires/grad_mode.py, per thread) overrides it.

Does each layout earn its place? Measured (2 cores AMD EPYC, AVX2, no AVX-512; NumPy's OpenBLAS, float32;
the conv rows of benchmarks/bench.py: one training step of the layer, forward, dx and dw; ms, median of 9,
each layout forced with ``conv_layout`` in a random order per round; after issue 23's thread pool, glibc
told to keep freed blocks and the rows layout's shared zeros; "rows" on a strided layer is "nchw"):

    layer                                          nchw    rows    nhwc   choose_layout
    3x3 64->64 64x28x28 N128 (the issue's)          207     231     242   rows
    d2l b2 3x3 64->64 64x24x24 N64                   81      79      75   rows
    d2l b3 3x3 128->128 128x4x4 N256                 49      54      34   (winograd now)
    cifar layer1 3x3 16->16 16x28x28 N128            29      28      41   rows
    cifar layer3 3x3 64->64 64x7x7 N128              25      21      18   nhwc
    resnet50 layer1 3x3 64->64 64x16x16 N32          22      22      23   nhwc
    resnet50 layer1 1x1 256->64 256x16x16 N32        13.1    14.2    14.7 nhwc
    cifar stem 3x3 1->16 1x28x28 N128 (no dx)         4.3     4.7     5.6 rows
    d2l stem 7x7/2 1->64 1x96x96 N64 (no dx)         30      --      50   nchw
    resnet50 stem 7x7/2 3->64 3x64x64 N32 (no dx)    19      --      46   nchw

Each is the fastest somewhere, so all three stay: channels first on the strided stems (channels last is
1.7-2.4x slower there, and rows cannot take a stride), shifted rows on the 16-channel 28x28 layers (5%
faster than channels first, 1.5x faster than channels last), channels last on the small late-stage images
(1.4x on 4x4 and 7x7; those of 128 channels and more now go to Winograd, below). On the 64-channel
layers of 16x16 to 28x28 the three are within a few percent of one another: a second run of 15 rounds
gave the issue's layer 205, 209 and 205 ms, d2l b2 80, 82 and 77, resnet50's 3x3 19, 20 and 21, so the
rule's choice there costs little either way (the issue's layer missed by 10% in the first run, not in
the second). Single layers here are fed NCHW; in a network a channels-last layer hands the next one
channels last, which the 1x1 256->64 layer (channels first 8% faster fed NCHW) then reads without a
copy (im2col.py).

Since then a layer's backward unfolds g once for dx and dw together where it can (conv.py
``conv2d_input_and_weight_grad``: 6-19% faster in every layout); timed again so (forward plus that
backward, ms, median of 11 rounds in a random order, same machine), the choices stand: 32x14x14 N128
rows 19.0, nhwc 22.0, winograd 25.7; 64x7x7 N128 18.4, 16.1, 16.6; 64x24x24 N64 69.6, 73.3, 70.8;
64x16x16 N32 18.7, 19.3, 17.6 (Winograd's 6% there is inside this VM's noise, and the threshold stays).

Winograd, measured the same way (same machine; the layer's forward, dx and dw in ms, median of 9 rounds,
the layouts in a random order each round; 3x3, padding 1, C -> C channels):

    layer                      rows    nhwc   winograd   choose_layout
    32x14x14 N128              21.2    21.5     24.7     rows
    64x7x7 N128                18.9    16.6     17.3     nhwc
    64x24x24 N64               90.8    88.1     84.0     rows
    64x16x16 N32               25.9    21.8     24.2     nhwc
    128x8x8 N32                22.5    18.5     15.2     winograd
    128x12x12 N64              73.0    64.7     52.9     winograd
    128x4x4 N256               47.0    32.5     30.3     winograd
    512x3x3 N64               111.2    88.2     80.8     winograd
    512x2x2 N32                48.9    37.3     38.9     winograd

On 16 and 32 channels the transforms (a dozen passes over tiles 4 times the size of the input) cost more
than the products save; from 128 channels on the products dominate and Winograd is 7-18% faster than
the best direct layout in this run (256x6x6 N64, in an earlier and noisier run of 7 rounds: 42 ms against
65). At 64 channels it is within the noise of the others, in single layers and in whole networks
(d2l_resnet18 at 96x96 and resnet50 with the threshold at 64 instead of 128: -7% to +5% a step), so the
threshold is 128. A 2x2 output (512x2x2 here) is a wash, 4% slower in this run and 2% faster in the one
before; the rule takes it, and the whole-network figures below include it. A 1x1 output is left to
channels last, which multiplies its one live tap only. Whole networks (bench.py's workloads, minires
alone, steps with and without Winograd alternating in one process): d2l_resnet18 96x96 training -17%,
inference -10%; resnet50 training -4%, inference -8%.

Weight-heavy layers (measured on an AVX-512 machine: 2 cores of an AMD EPYC, OpenBLAS's SkylakeX
kernels; a layer's forward, dx and dw in ms, median of 7 rounds in a random order):

    layer              weights/input    nchw    nhwc   winograd
    512x3x3 N64              8.0        62.3    73.4     69.8
    512x2x2 N32             36.0        20.3    37.6     36.6
    256x4x4 N32              4.5        13.7    13.9     12.6
    256x2x2 N256             2.4        32.6    25.4     19.5

Where the weights dwarf the input, each chunk's products read the whole weight matrix for a few columns
of cols, and what is done to the weights per call decides: channels first takes w as it is (a reshape),
channels last copies it transposed, Winograd transforms it into 16/9 of its size and then multiplies
4 times fewer rows per read of it (a tile for 4 pixels). So from WEIGHT_HEAVY_RATIO (6) times the input
on, channels first, though it multiplies the padding's zeros that the others skip or share (every tap
must be live: on a 1-pixel output, one tap of nine is, and channels last keeps it alone). Whole
networks (the same machine; steps with the rule and without it alternating in one process, 10 rounds):
resnet50 training -6%, inference -3.5% (its last stage's 3x3 layers and the 1x1 512 -> 2048);
d2l_resnet18 at 96x96 training -1%, inference -5% (the last stage's 3x3 layers of 512 channels);
d2l_resnet18 at 28x28 and cifar_resnet(20) have no such layer (their runs moved by -4% to +2%, the noise).
The live taps (below) now take the 3x3 layers among these, strided ones too (resnet50's 4x4 -> 2x2 layer
of 512 channels); the rule keeps the 1x1 ones (resnet50's 512 -> 2048).

The live taps (the same machine and method; forward, dx and dw in ms; "before" the rule above them):

    layer                  nchw    nhwc   winograd   taps   before
    64x7x7 N128            13.3    11.6     15.2     10.6    11.6
    64x7x7 N256            33.8    26.6     34.3     26.0    26.8
    128x4x4 N256           38.3    27.1     24.0     20.9    22.8
    256x4x4 N32            19.0    17.8     19.0     13.6    18.4
    256x2x2 N256           45.5    32.3     26.7     16.9    26.3
    512x3x3 N64            71.4    77.0     79.5     49.4    71.4
    512x2x2 N32            28.2    36.0     47.9     29.5    28.6
    256x6x6 N64            66.0    64.1     52.1     54.2    54.2
    128x8x8 N32            13.1    12.2      9.8     11.8     9.5
    64x16x16 N32           19.9    19.5     16.5     21.2    19.0

On the small outputs the live taps multiply a third fewer values than an unfold (49 of 81 tap-pixel
pairs on 3x3, 16 of 36 on 2x2), with K = Cg per product; from 6x6 up Winograd multiplies fewer still
and wins (with OpenBLAS's Haswell kernels on the same machine, 256x6x6: Winograd 36.6, taps 44.9),
and on larger images the zeros are few. Whole networks (steps with and without the rule alternating in
one process, 8-10 rounds): d2l_resnet18 at 28x28 training -7%, inference -7%; at 96x96 -6% and -9%;
cifar_resnet(20) -2% and +1.5%, resnet50 +1.5% and -1% (the noise).

A strided layer's taps read strided blocks (512x4x4 -> 2x2, forward: taps 7.9, channels first 6.0 ms, at
first), and the rule left strided layers to the others. Since the taps take dx by their fold (no flipped
kernel to make: conv.py) and make their weight matrix on the threads, they win on strided layers too
where the output is small. Measured (2 cores of an AMD EPYC Zen 5, AVX-512, OpenBLAS's Haswell kernels;
3x3 stride 2 padding 1, channels-last x and g; forward + backward in ms, median of 9 in a random order,
one run; the rule chose channels last, or first where the weights outweigh x: 512 -> 512):

    layer (C -> OC, input, batch)     output   nchw    nhwc    taps
    512 -> 512, 3x3, N64               2x2     25.0    21.6    12.8
    512 -> 512, 4x4, N32               2x2     13.9    12.4    10.2
    128 -> 256, 4x4, N256              2x2     15.2     9.8     7.4
    256 -> 256, 8x8, N32               4x4     12.4    10.0     8.9
    64 -> 128, 7x7, N256               4x4     18.5    10.7     9.6
    128 -> 256, 5x5, N64               3x3      7.5     5.9     4.3
    256 -> 512, 6x6, N64               3x3     24.6    21.0    17.7
    32 -> 64, 14x14, N128              7x7      9.8     6.4     7.0
    64 -> 128, 24x24, N64             12x12    30.5    23.3    23.7
    256 -> 512, 2x2, N256              1x1     11.2     6.1     6.1

Whole networks (the rule with and without strided taps alternating in one process, 10 rounds):
d2l_resnet18 at 28x28 training -2%, inference -1.6%, at 96x96 training -2.3%; resnet50 training -0.6%,
inference -2.8%.

Winograd's larger tiles, F(3x3, 3x3) and F(4x4, 3x3) (measured on 2 cores of an AMD EPYC Zen 5 with AVX-512,
family 26; the layer's forward, dx and dw in ms, median of 9 rounds, the layouts in a random order each
round; "before" what the rule chose without them, "now" with them). With OpenBLAS's Haswell kernels (this
VM's environment sets OPENBLAS_CORETYPE=Haswell: 256-bit vectors, a GEMM peak of 254-257 GFLOP/s on 2 cores):

    layer               rows    nhwc   winograd  winograd3  winograd4   taps    before   now
    64x24x24 N64        40.2    39.3     29.5      22.4       20.6      42.7    40.2     20.6
    128x12x12 N64       42.2    36.8     22.2      17.7       15.4      36.0    22.2     15.4
    256x6x6 N64         45.9    35.4     21.9      18.7       27.5      30.0    21.9     18.7
    64x16x16 N32        10.2     9.4      7.1       6.9        4.8      10.2     9.4      4.8
    128x8x8 N32         10.2     8.3      5.2       5.5        4.3       7.8     5.2      4.3
    64x7x7 N256         18.0    13.9     12.2      11.9        8.7      14.0    14.0      8.7
    128x4x4 N256        25.7    16.6     10.4      16.7        8.0      13.1    13.1      8.0
    32x14x14 N128        9.2     8.9      7.2       6.8        6.9      10.9     9.2      6.9
    16x28x28 N128       10.5    14.0     12.9      13.1       11.1      20.3    10.5     10.5
    512x3x3 N64         65.7    42.2     42.9      30.4       43.1      28.8    28.8     28.8

With its SkylakeX kernels (the environment variable unset: 512-bit vectors, 463 GFLOP/s), the same layers:
before 25.2, 16.1, 16.6, 5.9, 3.8, 9.7, 8.6, 6.6, 7.8, 20.3 ms, now 18.2, 12.3, 16.8, 3.9, 3.9, 7.3, 7.0, 5.6,
7.7, 20.4. The products are where the time goes at these channel counts, and the larger the tile the fewer
(per output pixel 4 for F(2x2, 3x3), 25/9 for F(3x3, 3x3), 36/16 for F(4x4, 3x3) where the tiles fit the
output), while the transforms, each a small product along one axis (winograd.py), cost about the same per
pixel: so the larger tiles win wherever their tiles cover the output with little waste (4x4 tiles on a 6x6
output compute 64 pixels for 36: F(3x3, 3x3) there). They lose where the weights dominate: with 512 channels
(F(3x3, 3x3) with the SkylakeX kernels: 34.5 ms against 20.3 on 3x3 outputs, one tile per image and a
transformed kernel 25/9 the size of the weights; 69.9 against 61.7 on 7x7), and with 256 channels for F(4x4,
3x3) (14x14 N32: 45.2 against 39.3); hence the channel bounds and the rule that the tiles be at least as many
as the channels. With 16 channels F(4x4, 3x3) is faster as a single layer with the Haswell kernels (16x28x28
N128, x and g channels last, median of 15 in a random order: forward 3.75 ms against the shifted rows' 4.33,
forward and backward 10.3 against 12.5) but not in cifar_resnet(20) as a whole (30 rounds alternating in one
process, twice: training -0.8% and -0.5%, inference +3.5% and +3.7%; an earlier run +8% and +15%). Traced
(profile_ops.py, inference, one profile each): in the network the six 16-channel layers took 24.5 ms with
F(4x4, 3x3), 4.1 a layer where alone it takes 3.75, and 24.2 with the rows, 4.0 a layer against 4.3 alone; the
strided 16 -> 32 layer after them, channels first, read its input channels last (3.1 ms against 2.7). The
transforms, a dozen passes over arrays 2.25 times the input, lose more to the cache that the network's other
arrays share than the rows' products do, which the GEMM bounds: the bound is 32. Backward is another matter:
there one transform of g serves dx and dw (conv.py ``conv2d_input_and_weight_grad``), and dx goes into x's
memory order, NCHW beside the rows' forward, so the batch norm and ReLU around the layer are not slowed. So
dx's flipped convolution takes the larger tiles from 16 channels (WINOGRAD_TILES_MIN_CHANNELS_DX): on 2 cores
of an AMD EPYC Zen 4 (AVX-512, OpenBLAS's SkylakeX kernels) the six 16-channel layers' backward took 48.6 ms
of a cifar_resnet(20) training step against 61.5 with the rows (each op timed, steps with and without taking
turns in one process, 16 rounds), and the step 1-4.5% less (three runs of 14-30 rounds: 0.955, 0.979, 0.988
of the time before). Whole networks
(steps with and without the larger tiles alternating in one process, 8 rounds, Haswell kernels): d2l_resnet18
at 28x28 training -13%, at 96x96 training -17%, inference -17%; cifar_resnet(20) -4.5%, resnet50 -4.5%; with
the SkylakeX kernels d2l_resnet18 -2.5% (28x28) and -9% (96x96 training), resnet50 -2.5%. F(3x3, 3x3) alone
(on the 6x6 outputs) takes 2.6% off d2l_resnet18's 96x96 training step. Their float32 error is larger than the
direct form's (winograd.py, tests/test_winograd.py): up to about 5e-6 and 1.1e-5 of the largest value, against
2e-7 to 7e-7. On 3x3 outputs (one 3x3 tile an image, where the live taps would take the layer otherwise)
F(3x3, 3x3) took 5.6 ms against the taps' 6.7 (128 channels, batch 256) and 1.7 against 2.2 (64 channels) with
the Haswell kernels, 5.1 against 4.7 and 1.4 against 1.8 with the SkylakeX kernels; a 5x5 output (4 products a
pixel in 3x3 tiles, not fewer than 4) stays with F(2x2, 3x3) or the others (128 channels, batch 64: F(2x2,
3x3) 6.4 and 4.9 ms, F(3x3, 3x3) 5.2 and 4.6, the taps 5.7 and 4.0)."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from .. import threads
from ..backend import get_array_module
from ..grad_mode import forced_conv_layout
from ..memory_order import copy_into
from .args import Padding, Pair
from .im2col import (
    col2im,
    col2im_nhwc,
    conv_output_size,
    im2col,
    im2col_nhwc,
    im2col_rows,
    live_run,
    live_taps,
    rows_view,
)
from .winograd import (
    F2,
    F3,
    F4,
    input_transform,
    output_transform,
    output_transform_grad,
    tiles,
    weight_transform,
    weight_transform_grad,
)

CHUNK_BYTES = 4 << 20  # the cols of one batch chunk: about 4 MiB, to stay in the cache (L3 here: 32 MiB)
# Winograd's V per chunk: a quarter as much, for its transforms hold three more arrays of about V's size
# beside it (the stacked slabs and the first axis's result), and two threads share the memory's bandwidth.
# First 2 MiB, measured against 4 MiB (steps alternating in one process, 8 rounds, 2 cores of an AMD EPYC Zen
# 5): with OpenBLAS's Haswell kernels d2l_resnet18 -1.5% (both sizes) and -6% (96x96 inference), resnet50
# -1.5%, cifar_resnet(20) +1%; with its SkylakeX kernels d2l_resnet18 at 96x96 -3% and -7% (inference),
# cifar_resnet(20) -7%, resnet50 +1%; 1 MiB there -1% to +4% against 2 MiB. Then 1 MiB against 2 MiB on a
# Zen 4 (AVX-512, 1 MiB of L2 a core, OpenBLAS's SkylakeX kernels; the same method, 14 rounds, two runs):
# cifar_resnet(20) training -4.3% and -1.4%, inference -5.1% and -5.5% (every Winograd layer's forward and
# backward faster, and the batch norms beside them: the transforms' arrays crowd the caches less);
# d2l_resnet18 at 96x96 training -1.8% and +1.0%, inference -7.7%; at 28x28 training -1.1%, inference
# +0.9%; resnet50 training +0.5%, inference -0.8%. A chunk on two threads there: a 1.55 MB copy took
# 0.044 ms alone and 0.080 beside another.
WINOGRAD_CHUNK_BYTES = 1 << 20
# On the GPU a chunk is bounded by memory, not by a cache: each chunk costs a copy kernel per kernel offset
# and a GEMM launch, so CPU-sized chunks would turn a conv into hundreds of small launches. 1 GiB of cols
# holds the whole batch of every zoo network at its benchmark size (d2l_resnet18 at 96x96, batch 256, is
# 340 MiB in its largest layer).
DEVICE_CHUNK_BYTES = 1 << 30
# Input and output channels from which choose_layout gives a 3x3 stride-1 layer to Winograd.
WINOGRAD_MIN_CHANNELS = 128
# The larger Winograd tiles, F(3x3, 3x3) and F(4x4, 3x3) (``_large_tiles``): each for channels in and out
# from WINOGRAD_TILES_MIN_CHANNELS up to its own most (F(4x4, 3x3) loses from 256 channels, F(3x3, 3x3) from
# 512, on both kernels of OpenBLAS), where its tiles over the batch are at least as many as the layer's
# channels (its transformed weights, a*a*OC*C, no more than its transformed input, a*a*T*C) and it takes
# fewer than WINOGRAD_MAX_PRODUCTS products per output pixel (F(2x2, 3x3)'s 4 on whole tiles; the direct
# form's 9).
WINOGRAD_TILES_MIN_CHANNELS = 32
# ... and for the flipped convolution that gives a layer's dx and dw together (conv.py
# ``conv2d_input_and_weight_grad``), from this many channels: 16-channel layers too. There one transform of
# g serves both products, and dx goes into x's memory order, so the channels-last output that slows the
# batch norm and ReLU after a 16-channel forward (the forward's bound stays 32) costs nothing. Measured
# (cifar_resnet(20) training, 28x28 at batch 128; steps with and without alternating in one process, 16
# rounds; 2 cores of an AMD EPYC Zen 4, AVX-512, OpenBLAS's SkylakeX kernels): the six 16-channel layers'
# backward 48.6 ms a step against 61.5 with the stacked rows (the module docstring).
WINOGRAD_TILES_MIN_CHANNELS_DX = 16
WINOGRAD_TILES_MAX_CHANNELS = {"winograd4": 128, "winograd3": 256}
WINOGRAD_MAX_PRODUCTS = 4
# dW = dY cols^T of a channels-first layer with at most this many output channels (per group) is computed
# as (cols dY^T)^T: the same sums, the long reduction over M with the few channels as the product's
# columns. Measured (a layer's dx and dw from one unfold of g, rows layout, median of 25 in a random
# order; 2 cores of an AMD EPYC with AVX-512): with OpenBLAS's SkylakeX kernels 16, 32 and 64 channels
# 21%, 14% and 8% faster; with its Haswell kernels (OPENBLAS_CORETYPE=Haswell, same machine) 0-9%
# faster. Whole training steps, SkylakeX: cifar_resnet(20) -9%, d2l_resnet18 96x96 -5%, resnet50 -1%.
# Above it (the 512-channel layers) the plain order: the transposed dW there is 9 MB to reorder.
DW_TRANSPOSED_MAX_CHANNELS = 64
# Weights (every tap live) more than this many times the input: channels first (choose_layout).
WEIGHT_HEAVY_RATIO = 6
# The largest output (pixels on a side) that choose_layout gives to the live-taps layout, and the largest
# where the layer is one for Winograd (at 6x6 and above Winograd multiplies less and is faster).
TAPS_MAX_OUTPUT = 7
TAPS_MAX_OUTPUT_OVER_WINOGRAD = 4
# The largest output of a strided layer (a kernel of several taps) that goes to the live taps: from 2x2 to
# 4x4 they beat channels first and last by 10-40% (the module docstring); at 7x7 and above they lose.
TAPS_MAX_STRIDED_OUTPUT = 4
# ... and the fewest input channels: with fewer, each tap's product is too thin (K = Cg) for what it costs
# (forward + backward, 4x4 outputs, same machine: 3 channels, a 7x7 stem, 5.5 times channels first's time;
# 16 and 32 channels 1.1-1.25 times channels last's; 64 channels even).
TAPS_MIN_STRIDED_CHANNELS = 64
# choose_layout gives a layer for the shifted rows their stacked form (StackedRows) where a kernel row holds
# at least ROWS_STACKED_MIN_K values (Cg*KW) and at least ROWS_STACKED_PER_OUTPUT times as many as there are
# output channels: the product's depth, Cg*KW, then pays for writing its KH times as many rows. Measured (a
# layer's forward, 3x3 with padding 1 on 28x28 images at batch 128 unless said, stacked time / unfolded time,
# median of 11-15 in a random order; 2 cores of an AMD EPYC Zen 5, OpenBLAS's Haswell kernels): 16 -> 16
# channels 0.97, 8 -> 8 0.91, 4 -> 4 0.95, 2 -> 2 0.88, 32 -> 32 (14x14) 0.96, 48 -> 48 (14x14) 0.94, 64 -> 64
# (24x24, N64) 0.99; fewer than twice the output channels: 8 -> 16 1.00, 16 -> 32 (14x14) 1.00, 6 -> 16 1.04,
# 3 -> 8 1.09, 2 -> 4 1.10, 1 -> 2 1.08, 4 -> 16 1.36; and 1 -> 1 (3 values a row) 1.11.
ROWS_STACKED_MIN_K = 6
ROWS_STACKED_PER_OUTPUT = 2
THREADS_OVERRIDE = object()  # choose_layout's default ``forced``: the thread's conv_layout, read then


def dx_is_convolution(kernel_size: Pair, stride: Pair, padding: Padding, dilation: Pair) -> bool:
    """Whether dx of this layer is a stride-1 convolution of g with the flipped kernel (conv.py
    ``conv2d_input_grad``): stride 1, and padding at most the dilated kernel's extent on each side (the
    flipped convolution pads g by the extent minus the padding)."""
    (KH, KW), (DH, DW), ((pt, pb), (pl, pr)) = kernel_size, dilation, padding
    return stride == (1, 1) and max(pt, pb) <= DH * (KH - 1) and max(pl, pr) <= DW * (KW - 1)


class Layout:
    """One convolution's geometry, unfolded one way; a subclass says which (see the module docstring)."""

    name = ""
    has_fold = True  # fold (dx by col2im) exists; without it dx must be the flipped-kernel convolution
    dx_by_fold = False  # dx by the fold even where it is a convolution (LiveTaps: no flipped kernel to make)
    # The conv_layout override in force when choose_layout chose this layout (None: the rule's choice);
    # dx's flipped-kernel convolution is chosen under the same one, whenever backward runs.
    forced: str | None = None

    def __init__(
        self,
        x_shape: tuple[int, ...],
        w_shape: tuple[int, ...],
        stride: Pair,
        padding: Padding,
        dilation: Pair,
        groups: int,
    ) -> None:
        self.x_shape, self.w_shape = tuple(x_shape), tuple(w_shape)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        (H, W), (KH, KW) = self.x_shape[2:], self.w_shape[2:]
        self.OH = conv_output_size(H, KH, stride[0], padding[0], dilation[0])
        self.OW = conv_output_size(W, KW, stride[1], padding[1], dilation[1])
        self.OCg = self.w_shape[0] // groups

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def dx_by_flipped_kernel(self) -> bool:
        """Whether dx is computed as the convolution of g with the flipped kernel (conv.py
        ``conv2d_input_grad``): where it is one (``dx_is_convolution``), unless this layout's own fold is
        the cheaper way (``dx_by_fold``)."""
        kernel_size = self.w_shape[2:]
        return not self.dx_by_fold and dx_is_convolution(
            kernel_size, self.stride, self.padding, self.dilation
        )

    def values_per_image(self) -> int:
        """How many values of cols one image unfolds to, over every group (sets the chunk size)."""
        raise NotImplementedError

    def chunks(self, x: Any) -> list[slice]:
        """Slices of the batch axis of ``x`` (or of g, for dx) whose cols take at most about CHUNK_BYTES on
        the CPU (``chunk_bytes``; WINOGRAD_CHUNK_BYTES for Winograd's V): unfolded a chunk at a time, cols
        stay in the cache between the unfold and the product that reads them; chunks of equal size, as
        many as a multiple of the threads (``balanced_chunks``). On the GPU, DEVICE_CHUNK_BYTES: the whole
        batch as a rule."""
        N = self.x_shape[0]
        on_cpu = get_array_module(x) is np
        limit = self.chunk_bytes() if on_cpu else DEVICE_CHUNK_BYTES
        B = max(1, limit // max(1, self.values_per_image() * x.dtype.itemsize))
        if on_cpu:
            return threads.balanced_chunks(N, B)  # the same share for every thread
        return [slice(i, min(i + B, N)) for i in range(0, N, B)]

    def chunk_bytes(self) -> int:
        """The bytes of cols that a batch chunk takes on the CPU, about."""
        return CHUNK_BYTES

    def empty(self, xp: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        """An uninitialized (N, C, H, W) array in the layout's memory order: y, or dx."""
        return xp.empty(shape, dtype=dtype)

    def weight_matrix(self, w: Any) -> Any:
        raise NotImplementedError

    def weight_from_matrix(self, dW: Any) -> Any:
        raise NotImplementedError

    def unfold(self, x: Any) -> Any:
        raise NotImplementedError

    def product(self, W: Any, cols: Any, n: int, out: Any | None = None) -> Any:
        """y of the chunk; written into ``out`` (the chunk's slice of y, in the layout's memory order) and
        ``out`` returned where the layout's product can go there directly, else a new array or a view."""
        raise NotImplementedError

    def output_grad(self, g: Any) -> Any:
        raise NotImplementedError

    def weight_grad(self, dY: Any, cols: Any) -> Any:
        raise NotImplementedError

    def fold(self, W: Any, dY: Any, n: int) -> Any:
        raise NotImplementedError


class ChannelsFirst(Layout):
    r"""cols[g, (c, kh, kw), (n, oh, ow)] (``im2col``), and W = w as (G, OCg, K): per group g

        Y_g = W_g @ cols_g          dW_g = dY_g @ cols_g^T       dcols_g = W_g^T @ dY_g
        (OCg, M)                     (OCg, K)                     (K, M), then dx = col2im(dcols)

    with Y, dY in the (o, (n, oh, ow)) layout: y and g with their first two axes swapped.
    """

    name = "nchw"

    def values_per_image(self) -> int:
        return self.x_shape[1] * self.w_shape[2] * self.w_shape[3] * self.OH * self.OW  # C = G*Cg rows

    def weight_matrix(self, w: Any) -> Any:
        return w.reshape(self.groups, self.OCg, -1)  # (G, OCg, K)

    def weight_from_matrix(self, dW: Any) -> Any:
        return dW.reshape(self.w_shape)  # (OC, Cg, KH, KW)

    def unfold(self, x: Any) -> Any:
        return im2col(x, self.w_shape[2:], self.stride, self.padding, self.dilation, self.groups)  # (G, K, M)

    def product(self, W: Any, cols: Any, n: int, out: Any | None = None) -> Any:
        Y = W @ cols  # (G, OCg, M)
        return Y.reshape(-1, n, self.OH, self.OW).transpose(1, 0, 2, 3)  # (n, OC, OH, OW), a view

    def output_grad(self, g: Any) -> Any:
        xp = get_array_module(g)
        return xp.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(self.groups, self.OCg, -1)  # (G, OCg, M)

    def weight_grad(self, dY: Any, cols: Any) -> Any:
        if self.OCg <= DW_TRANSPOSED_MAX_CHANNELS:  # few output channels: as (cols dY^T)^T
            return (cols @ dY.transpose(0, 2, 1)).transpose(0, 2, 1)  # (G, OCg, K), a transposed view
        return dY @ cols.transpose(0, 2, 1)  # (G, OCg, K)

    def fold(self, W: Any, dY: Any, n: int) -> Any:
        dcols = W.transpose(0, 2, 1) @ dY  # (G, K, M)
        x_shape = (n, *self.x_shape[1:])
        return col2im(dcols, x_shape, self.w_shape[2:], self.stride, self.padding, self.dilation)


class ShiftedRows(ChannelsFirst):
    r"""Channels first, unfolded by shifted rows (``im2col_rows``): cols (G, K, L) over the L flat
    positions of the images laid end to end with the zeros between them, of which the n*OH*OW output
    pixels are a strided subset (``rows_view``). The products are ChannelsFirst's, over L >= M columns:
    Y is read at the output pixels, and dY is put there with zeros in the other columns (so those add
    nothing to dW).

    Kernel rows stacked (``stacked``: ``StackedRows``, a kernel of several rows): tap (kh, kw) reads at p
    what tap (0, kw) reads at p + kh*s, s = DH*Wz (one kernel row down), so cols holds the first kernel row's
    taps only, over a span L3 = L + (KH-1)*s (``im2col_rows`` stacked, KH times fewer values), and the kernel
    rows go into the product's rows instead, W (G, KH*OCg, Cg*KW):

        Z = W cols                       Z[(kh, o), q] = sum_(c, kw) w[o, c, kh, kw] cols[(c, kw), q]
        Y[o, p] = sum_kh Z[(kh, o), p + kh*s]                                 (KH shifted slices added)
        dW = dZ cols^T,  dZ[(kh, o), p + kh*s] = dY[o, p]                     (dY put KH times, shifted)

    The backward pair is the forward's differential: Z is linear in W, Y a sum of shifted slices of Z, so
    dL/dZ[(kh, o), q] = dY[o, q - kh*s] (0 where that is no pixel), and dW = dZ cols^T as for any product.
    The same multiply-adds as the unfolded K = Cg*KH*KW, as one product of KH times the rows over a third
    of the cols: for 16 channels 48 by 48 instead of 16 by 144, whose operand is packed once for 3 times the
    rows (measured, one thread: the product 15% faster, the unfold 37%, the shifted additions and the three
    copies of dY taking some of it back; a batch chunk's forward and backward 9% faster). Where a kernel
    row holds few values for the output channels the product is too thin for what it writes: choose_layout
    stacks only from ROWS_STACKED_MIN_K values a kernel row and ROWS_STACKED_PER_OUTPUT times the output
    channels OCg.

    No fold: dcols = W^T dY would have to be folded back from the shifted rows, and the convolutions that
    this layout serves (stride 1) get dx faster as the flipped-kernel convolution (conv.py). So choose_layout
    takes it only for layers whose dx is a convolution, and ``fold`` raises.
    """

    name = "rows"
    has_fold = False
    stacked = False  # the kernel rows unfolded; StackedRows: stacked in the product

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        (pt, pb), (pl, pr) = self.padding
        self.padded = (self.x_shape[2] + max(pt, pb), self.x_shape[3] + max(pl, pr))  # (Hz, Wz), im2col_rows
        self.shift = self.dilation[0] * self.padded[1]  # s: one kernel row down, in flat positions

    def values_per_image(self) -> int:
        C, OC, (KH, KW) = self.x_shape[1], self.w_shape[0], self.w_shape[2:]
        if self.stacked:  # cols and the product Z, both over the span
            return (C * KW + KH * OC) * self.padded[0] * self.padded[1]
        return C * KH * KW * self.padded[0] * self.padded[1]

    def weight_matrix(self, w: Any) -> Any:
        if not self.stacked:
            return super().weight_matrix(w)  # (G, OCg, K)
        G, OCg, (Cg, KH, KW) = self.groups, self.OCg, self.w_shape[1:]
        W = w.reshape(G, OCg, Cg, KH, KW).transpose(0, 3, 1, 2, 4)  # (G, KH, OCg, Cg, KW)
        return get_array_module(w).ascontiguousarray(W).reshape(G, KH * OCg, Cg * KW)

    def weight_from_matrix(self, dW: Any) -> Any:
        if not self.stacked:
            return super().weight_from_matrix(dW)
        G, OCg, (Cg, KH, KW) = self.groups, self.OCg, self.w_shape[1:]
        dw = dW.reshape(G, KH, OCg, Cg, KW).transpose(0, 2, 3, 1, 4)  # (G, OCg, Cg, KH, KW)
        return get_array_module(dW).ascontiguousarray(dw).reshape(self.w_shape)  # (OC, Cg, KH, KW)

    def unfold(self, x: Any) -> Any:
        args = (self.w_shape[2:], self.padding, self.dilation, self.groups, self.stacked)
        return im2col_rows(x, *args)[0]  # (G, K, L), or (G, Cg*KW, L3) stacked

    def product(self, W: Any, cols: Any, n: int, out: Any | None = None) -> Any:
        Z = W @ cols  # (G, OCg, L), or (G, KH*OCg, L3) stacked
        if self.stacked:  # Y = the KH row blocks of Z added, each shifted by its kernel row (whole rows:
            # measured 1.5 times faster than adding the output pixels' strided views into ``out``)
            OCg, KH, s = self.OCg, self.w_shape[2], self.shift
            L = cols.shape[2] - (KH - 1) * s
            Y = Z[:, :OCg, :L] + Z[:, OCg : 2 * OCg, s : s + L]
            for kh in range(2, KH):
                Y += Z[:, kh * OCg : (kh + 1) * OCg, kh * s : kh * s + L]
            Z = Y  # (G, OCg, L)
        Y = Z.reshape(-1, Z.shape[2])  # (OC, L): the output pixels among its columns
        return rows_view(Y, n, (self.OH, self.OW), self.padded).transpose(1, 0, 2, 3)  # (n, OC, OH, OW)

    def output_grad(self, g: Any) -> Any:
        xp, n = get_array_module(g), g.shape[0]
        G, OCg = self.groups, self.OCg
        (Hz, Wz), (OH, OW) = self.padded, (self.OH, self.OW)
        L = (n - 1) * Hz * Wz + (OH - 1) * Wz + OW  # as im2col_rows
        KH, s = (self.w_shape[2], self.shift) if self.stacked else (1, 0)
        dY = xp.empty((G, KH, OCg, L + (KH - 1) * s), dtype=g.dtype)
        first = dY[:, 0, :, :L]
        first[...] = 0  # 0 at the columns that are no output pixel
        g_by_group = g.transpose(1, 0, 2, 3).reshape(G, OCg, n, OH, OW)
        for group in range(G):
            rows_view(first[group], n, (OH, OW), self.padded)[...] = g_by_group[group]
        dY[:, 0, :, L:] = 0
        for kh in range(1, KH):  # dZ[(kh, o), p + kh*s] = dY[o, p]: whole rows copied, 0 before and after
            dY[:, kh, :, : kh * s] = 0
            dY[:, kh, :, kh * s : kh * s + L] = first
            dY[:, kh, :, kh * s + L :] = 0
        return dY.reshape(G, KH * OCg, -1)  # (G, OCg, L), or (G, KH*OCg, L3) stacked

    def fold(self, W: Any, dY: Any, n: int) -> Any:
        raise NotImplementedError(
            "the rows layout has no fold: its dx is the flipped-kernel convolution (choose_layout takes "
            "rows only for layers whose dx is a convolution)"
        )


class StackedRows(ShiftedRows):
    """The shifted rows with the kernel rows stacked in the product (``ShiftedRows``, the algebra and its
    derivation there): cols of one kernel row's taps, W (G, KH*OCg, Cg*KW). A kernel of one row has nothing
    to stack: the plain shifted rows."""

    name = "rows_stacked"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.stacked = self.w_shape[2] > 1


class ChannelsLast(Layout):
    r"""cols[g, (n, oh, ow), (t, c)] (``im2col_nhwc``) over the T live taps, and W_g (OCg, T*Cg) with its
    columns in the same (t, c) order: the channels-first algebra transposed,

        Y_g = cols_g @ W_g^T        dW_g = dY_g^T @ cols_g       dcols_g = dY_g @ W_g
        (M, OCg)                     (OCg, T*Cg)                  (M, T*Cg), then dx = col2im_nhwc(dcols)

    with Y, dY in the ((n, oh, ow), o) layout: y and g channels last. The taps that see only padding
    multiply zeros: they are left out of W, and their dw is 0. y (and dx) is an NCHW view of an NHWC
    array (PyTorch's channels_last memory format), so the next channels-last layer reads it as it is.
    """

    name = "nhwc"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        KH, KW = self.w_shape[2:]
        self.taps = live_taps(self.x_shape[2:], (KH, KW), self.stride, self.padding, self.dilation)
        self.tap_index = [kh * KW + kw for kh, kw in self.taps]

    def values_per_image(self) -> int:
        return len(self.taps) * self.x_shape[1] * self.OH * self.OW  # T*Cg columns in each of G groups

    def empty(self, xp: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        return channels_last_empty(xp, shape, dtype)

    def weight_matrix(self, w: Any) -> Any:
        G, OCg, Cg = self.groups, self.OCg, self.w_shape[1]
        W_taps = w.reshape(G, OCg, Cg, -1)  # (G, OCg, Cg, KH*KW)
        # Only where some tap is dead: indexing all nine taps of a 512x512 kernel takes 3 times as long.
        if len(self.taps) < W_taps.shape[3]:
            W_taps = W_taps[..., self.tap_index]  # (G, OCg, Cg, T)
        if len(self.taps) == 1:  # (G, OCg, Cg) already: a view, no copy (BLAS reads either transpose), where
            # dx's flipped 1x1 kernel (w with its channel axes swapped) took a copy against the grain: 3.6 ms
            # for 512 x 2048 channels, 3 times the product it fed (AVX-512; that dx 5.96 ms -> 1.22)
            return W_taps.reshape(G, OCg, Cg)
        W = get_array_module(w).empty((G, OCg, len(self.taps), Cg), dtype=w.dtype)
        for g in range(G):  # the taps put before the channels: a transpose, on the threads
            copy_into(W[g], W_taps[g].transpose(0, 2, 1))
        return W.reshape(G, OCg, -1)  # (G, OCg, T*Cg)

    def weight_from_matrix(self, dW: Any) -> Any:
        G, OCg, Cg = self.groups, self.OCg, self.w_shape[1]
        KH, KW = self.w_shape[2:]
        xp, T = get_array_module(dW), len(self.taps)
        if T == KH * KW == 1:  # a 1x1 kernel: dW is dw already
            return dW.reshape(self.w_shape)
        dW_taps = dW.reshape(G, OCg, T, Cg).transpose(0, 1, 3, 2)  # (G, OCg, Cg, T)
        if T < KH * KW:
            dw = xp.zeros((G, OCg, Cg, KH * KW), dtype=dW.dtype)  # the dead taps stay 0
            dw[..., self.tap_index] = dW_taps
        else:  # every tap: the channels put back before the taps, a transpose on the threads
            dw = xp.empty((G, OCg, Cg, T), dtype=dW.dtype)
            for g in range(G):
                copy_into(dw[g], dW_taps[g])
        return dw.reshape(self.w_shape)  # (OC, Cg, KH, KW)

    def unfold(self, x: Any) -> Any:
        return im2col_nhwc(
            x, self.taps, self.stride, self.padding, self.dilation, self.groups, (self.OH, self.OW)
        )  # (G, M, T*Cg)

    def product(self, W: Any, cols: Any, n: int, out: Any | None = None) -> Any:
        rows = _nhwc_rows(out) if self.groups == 1 else None
        if rows is not None:  # the product written where y's chunk lies: no copy of it
            get_array_module(cols).matmul(cols[0], W[0].T, out=rows)  # (M, OC)
            return out
        Y = cols @ W.transpose(0, 2, 1)  # (G, M, OCg)
        Y = Y.transpose(1, 0, 2) if self.groups > 1 else Y  # (M, G, OCg)
        return Y.reshape(n, self.OH, self.OW, -1).transpose(0, 3, 1, 2)  # (n, OC, OH, OW), a view

    def output_grad(self, g: Any) -> Any:
        xp, OC = get_array_module(g), g.shape[1]
        dY = xp.ascontiguousarray(g.transpose(0, 2, 3, 1)).reshape(1, -1, OC)  # (1, M, OC)
        if self.groups > 1:  # contiguous per group: matmul loops slowly over strides BLAS cannot take
            dY = xp.ascontiguousarray(dY.reshape(-1, self.groups, self.OCg).transpose(1, 0, 2))
        return dY  # (G, M, OCg)

    def weight_grad(self, dY: Any, cols: Any) -> Any:
        return dY.transpose(0, 2, 1) @ cols  # (G, OCg, T*Cg)

    def fold(self, W: Any, dY: Any, n: int) -> Any:
        dcols = dY @ W  # (G, M, T*Cg)
        x_shape = (n, *self.x_shape[1:])
        return col2im_nhwc(
            dcols, x_shape, self.taps, self.stride, self.padding, self.dilation, (self.OH, self.OW)
        )


class LiveTaps(ChannelsLast):
    r"""No unfold: one product per live kernel tap, over the output pixels for which that tap reads the
    image (not the padding), channels last. Tap t = (kh, kw) is live for the output rows oh with
    0 <= oh*SH + kh*DH - pt < H, a run of rows (im2col.py ``live_run``), and likewise for the columns, so its
    pixels are a block of the output and the values it reads a (strided) block of x: per tap and group

        Y[block_t] += X_t @ W_t^T       dW_t = dY[block_t]^T @ X_t       dx[in_t] += dY[block_t] @ W_t
        (m_t, OCg)   (m_t, Cg) (Cg, OCg)                                  (m_t, Cg), the fold

    with X_t = x[:, in_t] the tap's input block as m_t rows of Cg channels, W_t = w[:, :, kh, kw] (W as
    ChannelsLast's, its Cg columns of tap t). The backward pair is the forward's differential: Y's block
    is X_t W_t^T summed over the taps, linear in each, so dL/dW_t = dY_block^T X_t and dL/dX_t = dY_block
    W_t, scatter-added to the input pixels the block read (blocks of different taps overlap). Each product
    multiplies only values of the image: on a small image the padding's zeros are a large share of an
    unfold's (a 3x3 output with padding 1: 32 of the 81 tap-pixel pairs), and the products have K = Cg,
    large on the many-channel layers where images are small. y and dx are NCHW views of NHWC arrays, as in
    ChannelsLast. dx is this fold also where it is a convolution (``dx_by_fold``): the flipped
    convolution would need w' = w with its channel axes swapped, per tap, and that copy (against the grain
    of w) costs more than the fold's block additions (conv.py ``conv2d_input_grad``).
    """

    name = "taps"
    dx_by_fold = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        (H, W), (SH, SW), (DH, DW) = self.x_shape[2:], self.stride, self.dilation
        (pt, _), (pl, _) = self.padding
        self.blocks = [  # per live tap: (output rows, input rows), (output columns, input columns)
            (live_run(H, self.OH, kh, SH, DH, pt), live_run(W, self.OW, kw, SW, DW, pl))
            for kh, kw in self.taps
        ]

    def values_per_image(self) -> int:
        pairs = sum((r[0].stop - r[0].start) * (c[0].stop - c[0].start) for r, c in self.blocks)
        return self.w_shape[1] * self.groups * (pairs + self.x_shape[2] * self.x_shape[3])

    def unfold(self, x: Any) -> Any:
        return get_array_module(x).ascontiguousarray(x.transpose(0, 2, 3, 1))  # (n, H, W, C): x itself

    def _input_block(self, x_nhwc: Any, t: int, g: int) -> Any:
        """Tap t's input block of group g as rows, (m_t, Cg)."""
        Cg = self.w_shape[1]
        (_, rows), (_, cols) = self.blocks[t]
        block = x_nhwc[:, rows, cols, g * Cg : (g + 1) * Cg]
        return get_array_module(x_nhwc).ascontiguousarray(block).reshape(-1, Cg)

    def _output_block(self, a: Any, t: int, g: int) -> Any:
        """Tap t's output block of group g, a view (n, bh, bw, OCg) of an (n, OH, OW, OC) array."""
        (rows, _), (cols, _) = self.blocks[t]
        return a[:, rows, cols, g * self.OCg : (g + 1) * self.OCg]

    def product(self, W: Any, x_nhwc: Any, n: int, out: Any | None = None) -> Any:
        xp, Cg = get_array_module(x_nhwc), self.w_shape[1]
        if _nhwc_rows(out) is not None:  # the taps added where y's chunk lies
            y = out.transpose(0, 2, 3, 1)  # (n, OH, OW, OC), a view
            y[...] = 0
        else:
            out = None
            y = xp.zeros((n, self.OH, self.OW, self.w_shape[0]), dtype=x_nhwc.dtype)
        for g in range(self.groups):
            for t in range(len(self.taps)):
                block = self._output_block(y, t, g)
                block += (self._input_block(x_nhwc, t, g) @ W[g, :, t * Cg : (t + 1) * Cg].T).reshape(
                    block.shape
                )
        return y.transpose(0, 3, 1, 2) if out is None else out  # (n, OC, OH, OW)

    def output_grad(self, g: Any) -> Any:
        return get_array_module(g).ascontiguousarray(g.transpose(0, 2, 3, 1))  # (n, OH, OW, OC)

    def weight_grad(self, dY: Any, x_nhwc: Any) -> Any:
        xp, Cg, T = get_array_module(dY), self.w_shape[1], len(self.taps)
        dW = xp.empty((self.groups, self.OCg, T * Cg), dtype=dY.dtype)
        for g in range(self.groups):
            for t in range(T):
                d = xp.ascontiguousarray(self._output_block(dY, t, g)).reshape(-1, self.OCg)  # (m_t, OCg)
                dW[g, :, t * Cg : (t + 1) * Cg] = d.T @ self._input_block(x_nhwc, t, g)
        return dW  # (G, OCg, T*Cg), W's layout

    def fold(self, W: Any, dY: Any, n: int) -> Any:
        xp, (C, H, W_), Cg = get_array_module(dY), self.x_shape[1:], self.w_shape[1]
        dx = xp.zeros((n, H, W_, C), dtype=dY.dtype)
        for g in range(self.groups):
            for t in range(len(self.taps)):
                (_, rows), (_, cols) = self.blocks[t]
                d = xp.ascontiguousarray(self._output_block(dY, t, g))  # (n, bh, bw, OCg)
                into = dx[:, rows, cols, g * Cg : (g + 1) * Cg]
                into += (d.reshape(-1, self.OCg) @ W[g, :, t * Cg : (t + 1) * Cg]).reshape(into.shape)
        return dx.transpose(0, 3, 1, 2)  # (n, C, H, W), a view


class Winograd(Layout):
    r"""Winograd's F(2x2, 3x3) (winograd.py; ``Winograd3``, ``Winograd4``: F(3x3, 3x3), F(4x4, 3x3)): V (a*a,
    T, C) the transformed input tiles in the place of cols (a = 4, 5 or 6), U (a*a, OC, C) the transformed
    kernel in the place of W, and per point xi of the transform

        M_xi = V_xi @ U_xi^T        dU_xi = dM_xi^T @ V_xi          (T, OC), (OC, C)

    with y = A^T M A per tile (``output_transform``), dM = A dY A^T (``output_transform_grad``) and dw =
    G^T dU G (``weight_transform_grad``). Only for 3x3 kernels with stride 1, no dilation, one group and a
    dx that is a convolution (``winograd_fits``): no fold, dx is the flipped-kernel convolution, in the
    layout chosen for it (Winograd where the rule, or the override, takes it: the flipped convolution of
    a layer that Winograd fits is one that it fits too). y is an NCHW view of an NHWC array, as in
    ChannelsLast.
    """

    name = "winograd"
    has_fold = False
    minimal = F2

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.tiles = tiles((self.OH, self.OW), self.minimal)

    def values_per_image(self) -> int:
        return self.minimal.a**2 * self.tiles[0] * self.tiles[1] * self.w_shape[1]  # V's values

    def chunk_bytes(self) -> int:
        return WINOGRAD_CHUNK_BYTES

    def empty(self, xp: Any, shape: tuple[int, ...], dtype: Any) -> Any:
        return channels_last_empty(xp, shape, dtype)

    def weight_matrix(self, w: Any) -> Any:
        return weight_transform(w, self.minimal)  # (a*a, OC, C)

    def weight_from_matrix(self, dU: Any) -> Any:
        return weight_transform_grad(dU, self.minimal)  # (OC, C, 3, 3)

    def unfold(self, x: Any) -> Any:
        return input_transform(x, self.padding, self.tiles, self.minimal)  # (a*a, T, C)

    def product(self, U: Any, V: Any, n: int, out: Any | None = None) -> Any:
        M = V @ U.transpose(0, 2, 1)  # (a*a, T, OC)
        into = None if _nhwc_rows(out) is None else out.transpose(0, 2, 3, 1)
        y = output_transform(M, n, (self.OH, self.OW), self.minimal, into)
        return out if y is into else y.transpose(0, 3, 1, 2)  # (n, OC, OH, OW)

    def output_grad(self, g: Any) -> Any:
        return output_transform_grad(g, self.tiles, self.minimal)  # (a*a, T, OC)

    def weight_grad(self, dM: Any, V: Any) -> Any:
        return dM.transpose(0, 2, 1) @ V  # (a*a, OC, C)

    def fold(self, U: Any, dM: Any, n: int) -> Any:
        raise NotImplementedError(
            f"the {self.name} layout has no fold: its dx is the flipped-kernel convolution (choose_layout "
            "takes Winograd only for layers whose dx is a convolution)"
        )


class Winograd3(Winograd):
    """Winograd's F(3x3, 3x3): 25 products per 3x3 output tile (3.24 times fewer multiplications than the
    direct form), transforms of 5x5 tiles (winograd.py)."""

    name = "winograd3"
    minimal = F3


class Winograd4(Winograd):
    """Winograd's F(4x4, 3x3): 36 products per 4x4 output tile (4 times fewer multiplications than the
    direct form), transforms of 6x6 tiles; larger float32 rounding than F(2x2, 3x3) (winograd.py)."""

    name = "winograd4"
    minimal = F4


def _nhwc_rows(out: Any | None) -> Any | None:
    """out (n, C, H, W), a chunk of a channels-last y, as the (n*H*W, C) rows of its memory (a view); None
    if there is no out or it is not laid out so."""
    if out is None:
        return None
    nhwc = out.transpose(0, 2, 3, 1)
    return nhwc.reshape(-1, nhwc.shape[3]) if nhwc.flags.c_contiguous else None


def channels_last_empty(xp: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """An uninitialized (N, C, H, W) array laid out as (N, H, W, C): PyTorch's channels_last format."""
    N, C, H, W = shape
    return xp.empty((N, H, W, C), dtype=dtype).transpose(0, 3, 1, 2)  # (N, C, H, W), channels last


def _taps_fit(OH: int, OW: int, w_shape: tuple[int, ...], stride: Pair, groups: int, winograd: bool) -> bool:
    """Whether choose_layout gives the layer to the live taps: one group, a kernel of more than one tap, and
    with stride 1 an output of at most TAPS_MAX_OUTPUT pixels on a side (TAPS_MAX_OUTPUT_OVER_WINOGRAD where
    Winograd would take the layer), with a larger stride one of 2 to TAPS_MAX_STRIDED_OUTPUT and at least
    TAPS_MIN_STRIDED_CHANNELS input channels (per group)."""
    if groups != 1 or w_shape[2] * w_shape[3] == 1:
        return False
    if stride != (1, 1):
        small = 2 <= min(OH, OW) and max(OH, OW) <= TAPS_MAX_STRIDED_OUTPUT
        return small and w_shape[1] >= TAPS_MIN_STRIDED_CHANNELS
    return max(OH, OW) <= (TAPS_MAX_OUTPUT_OVER_WINOGRAD if winograd else TAPS_MAX_OUTPUT)


def _weight_heavy(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: Pair, padding: Padding, dilation: Pair
) -> bool:
    """Whether the layer's weights are more than WEIGHT_HEAVY_RATIO times its input, with every kernel tap
    live (channels first multiplies the dead ones too, where channels last leaves them out)."""
    taps = w_shape[2] * w_shape[3]
    if math.prod(w_shape) <= WEIGHT_HEAVY_RATIO * math.prod(x_shape):
        return False
    return len(live_taps(x_shape[2:], w_shape[2:], stride, padding, dilation)) == taps


def _large_tiles(N: int, OH: int, OW: int, w_shape: tuple[int, ...], min_channels: int) -> str | None:
    """The larger Winograd tile that choose_layout gives a layer that Winograd fits: of "winograd4" and
    "winograd3", those the layer's channels and tiles allow (``min_channels``: WINOGRAD_TILES_MIN_CHANNELS,
    or WINOGRAD_TILES_MIN_CHANNELS_DX for dx's convolution; WINOGRAD_TILES_MAX_CHANNELS, N*TH*TW >= the
    channels, fewer than WINOGRAD_MAX_PRODUCTS per output pixel), the one with the fewest products per
    output pixel (a*a*TH*TW / (OH*OW): 4x4 tiles on a 6x6 output waste 28 of 64 pixels, 3x3 tiles none);
    None if neither."""
    best, fewest = None, float(WINOGRAD_MAX_PRODUCTS)
    for name, f in (("winograd3", F3), ("winograd4", F4)):
        TH, TW = tiles((OH, OW), f)
        products = f.a * f.a * TH * TW / (OH * OW)
        fit = min_channels <= min(w_shape[:2]) and max(w_shape[:2]) <= WINOGRAD_TILES_MAX_CHANNELS[name]
        if fit and N * TH * TW >= max(w_shape[:2]) and products < fewest:
            best, fewest = name, products
    return best


def _rows(w_shape: tuple[int, ...], groups: int) -> str:
    """The shifted rows' form for a layer: "rows_stacked" where a kernel of several rows has rows of Cg*KW
    values, at least ROWS_STACKED_MIN_K and ROWS_STACKED_PER_OUTPUT times the output channels per group;
    else "rows"."""
    OCg, (Cg, KH, KW) = w_shape[0] // groups, w_shape[1:]
    stack = KH > 1 and Cg * KW >= max(ROWS_STACKED_MIN_K, ROWS_STACKED_PER_OUTPUT * OCg)
    return "rows_stacked" if stack else "rows"


def winograd_fits(kernel_size: Pair, stride: Pair, padding: Padding, dilation: Pair, groups: int) -> bool:
    """Whether the Winograd layout can take this convolution: a 3x3 kernel, stride 1, no dilation, one group,
    and a dx that is a convolution (the layout has no fold)."""
    plain = tuple(kernel_size) == (3, 3) and stride == (1, 1) and dilation == (1, 1) and groups == 1
    return plain and dx_is_convolution(kernel_size, stride, padding, dilation)


LAYOUTS = {
    layout.name: layout
    for layout in (
        ChannelsFirst,
        ShiftedRows,
        StackedRows,
        ChannelsLast,
        Winograd,
        Winograd3,
        Winograd4,
        LiveTaps,
    )
}


def choose_layout(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: Pair,
    padding: Padding,
    dilation: Pair,
    groups: int,
    xp: Any = np,
    forced: Any = THREADS_OVERRIDE,
    for_dx: bool = False,
) -> Layout:
    """The layout of one convolution, the one place where it is chosen (see the module docstring): the
    ``forced`` layout (by default the thread's ``conv_layout``; dx passes the forward's) if one is set
    and can take the layer (where it cannot, rows falls back to nchw and the Winograd layouts to the
    rule), else the rule: on the CPU (``xp`` NumPy) Winograd's larger tiles where they pay
    (``_large_tiles``), then the live taps for a small output (``_taps_fit``), then channels
    first for a layer whose weights outweigh its input (``_weight_heavy``), then F(2x2, 3x3) for the 3x3
    layers it fits with at least WINOGRAD_MIN_CHANNELS channels in and out and an output of 2x2 pixels or
    more, then channels last when Cg >= 4*OW, shifted rows when dx is a convolution (stacked where their
    kernel rows are long enough: ``_rows``), channels first otherwise. ``for_dx``: the layer is the
    flipped convolution that gives a layer's dx (conv.py ``_flipped_convolution``), for which the larger
    tiles start at WINOGRAD_TILES_MIN_CHANNELS_DX channels."""
    if forced is THREADS_OVERRIDE:
        forced = forced_conv_layout()
    geometry = (tuple(x_shape), tuple(w_shape), tuple(stride), tuple(map(tuple, padding)), tuple(dilation))
    return _chosen_layout(*geometry, groups, xp is np, forced, for_dx)


@functools.lru_cache(maxsize=512)
def _chosen_layout(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: Pair,
    padding: Padding,
    dilation: Pair,
    groups: int,
    on_cpu: bool,
    forced: str | None,
    for_dx: bool,
) -> Layout:
    """choose_layout's choice and the Layout made for it, once per geometry, array module (``on_cpu``),
    override and purpose: a layer's forward and dx then take it from here on each call. A Layout is not
    changed once made (its ``forced`` is part of the key), so one object serves every call. Its rule is
    pure Python over the shapes (the live taps' blocks: 41 us for a 64-channel 7x7 layer, AVX-512),
    which a batch of one image pays on every layer and every step otherwise."""
    args = (x_shape, w_shape, stride, padding, dilation, groups)
    rows_fit = dx_is_convolution(w_shape[2:], stride, padding, dilation)  # rows has no fold
    winograd_fit = winograd_fits(w_shape[2:], stride, padding, dilation, groups)
    fits = {"rows": rows_fit, "rows_stacked": rows_fit}
    fits.update(dict.fromkeys(("winograd", "winograd3", "winograd4"), winograd_fit))
    if forced is not None and fits.get(forced, True):
        name = forced
    elif forced in ("rows", "rows_stacked"):
        name = "nchw"
    else:
        OH = conv_output_size(x_shape[2], w_shape[2], stride[0], padding[0], dilation[0])
        OW = conv_output_size(x_shape[3], w_shape[3], stride[1], padding[1], dilation[1])
        wide = min(w_shape[:2]) >= WINOGRAD_MIN_CHANNELS and min(OH, OW) >= 2  # a 1-pixel output: 1 live tap
        min_channels = WINOGRAD_TILES_MIN_CHANNELS_DX if for_dx else WINOGRAD_TILES_MIN_CHANNELS
        large = _large_tiles(x_shape[0], OH, OW, w_shape, min_channels) if on_cpu and winograd_fit else None
        if large is not None:
            name = large
        elif on_cpu and _taps_fit(OH, OW, w_shape, stride, groups, winograd_fit and wide):
            name = "taps"
        elif on_cpu and _weight_heavy(x_shape, w_shape, stride, padding, dilation):
            name = "nchw"
        elif winograd_fit and wide and on_cpu:
            name = "winograd"
        else:
            name = "nhwc" if w_shape[1] >= 4 * OW else _rows(w_shape, groups) if rows_fit else "nchw"
    layout = LAYOUTS[name](*args)
    layout.forced = forced
    return layout
