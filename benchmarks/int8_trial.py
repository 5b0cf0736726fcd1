"""Trial (issue 11): would int8 convolutions make applying the networks faster on a CPU?

    python benchmarks/int8_trial.py

The middle 48->48 3x3 convolution of one 512x512 plane (nearly all of applying N2D), in
bfloat16 (what `apply_precision="auto"` uses) and with torch's quantized int8 ops (x86 engine:
weights per channel, the input quantised per tensor from its range): the convolution alone on
an input already in int8, and the whole pass from float32 to float32. Relative error: mean
squared difference to float32 over the float32 output's mean square.
"""

import time
import warnings

import torch

warnings.filterwarnings("ignore")  # the quantized ops warn that they are deprecated


def ms(fn, repeats=10):
    fn(), fn()
    began = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - began) / repeats * 1000


def main():
    torch.manual_seed(0)
    x = torch.nn.functional.leaky_relu(torch.randn(1, 48, 512, 512), 0.2).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(48, 48, 3, padding=1).to(memory_format=torch.channels_last)
    torch.backends.quantized.engine = "x86"
    w = conv.weight.detach()
    qw = torch.quantize_per_channel(w, w.abs().amax((1, 2, 3)) / 127, torch.zeros(48, dtype=torch.long), 0,
                                    torch.qint8)
    packed = torch.ops.quantized.conv2d_prepack(qw, conv.bias.detach(), [1, 1], [1, 1], [1, 1], 1)

    def quantised(t):
        low, high = float(t.min()), float(t.max())
        scale = (high - low) / 255
        return torch.quantize_per_tensor(t, scale, int(round(-low / scale)), torch.quint8)

    with torch.no_grad():
        ref = conv(x)
        out_scale = float(ref.abs().max()) / 127
        qx = quantised(x)
        cb, xb = torch.nn.Conv2d(48, 48, 3, padding=1), x.to(torch.bfloat16)
        cb.load_state_dict(conv.state_dict())
        cb = cb.to(torch.bfloat16).to(memory_format=torch.channels_last)

        def int8_pass():
            return torch.ops.quantized.conv2d(quantised(x), packed, out_scale, 128).dequantize()

        def error(out):
            return float((out.float() - ref).pow(2).mean() / ref.pow(2).mean())

        last = torch.nn.Conv2d(48, 1, 1)
        qw1 = torch.quantize_per_channel(last.weight.detach(), last.weight.detach().abs().amax((1, 2, 3)) / 127,
                                         torch.zeros(1, dtype=torch.long), 0, torch.qint8)
        packed1 = torch.ops.quantized.conv2d_prepack(qw1, last.bias.detach(), [1, 1], [0, 0], [1, 1], 1)
        lb = torch.nn.Conv2d(48, 1, 1)
        lb.load_state_dict(last.state_dict())
        lb = lb.to(torch.bfloat16).to(memory_format=torch.channels_last)
        fixed = qx.q_scale(), qx.q_zero_point()  # a range calibrated beforehand: no min/max per pass

        def int8_rest():  # the rest of the network in int8: float32 in, one float32 channel out
            q = torch.quantize_per_tensor(x, *fixed, torch.quint8)
            h = torch.ops.quantized.leaky_relu(torch.ops.quantized.conv2d(q, packed, out_scale, 128), 0.2, False,
                                               out_scale, 128)
            return torch.ops.quantized.conv2d(h, packed1, 0.01, 128).dequantize()

        rows = [
            ("bfloat16 (shipped)", ms(lambda: cb(xb)), error(cb(xb))),
            ("int8, convolution alone", ms(lambda: torch.ops.quantized.conv2d(qx, packed, out_scale, 128)), None),
            ("int8, float32 in and out", ms(int8_pass), error(int8_pass())),
            ("rest of the network (3x3, LeakyReLU, 1x1) in bfloat16",
             ms(lambda: lb(torch.nn.functional.leaky_relu(cb(xb), 0.2)).float()), None),
            ("rest of the network in int8, range calibrated beforehand", ms(int8_rest), None),
        ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| 48->48 3x3 convolution, 512x512 | ms | relative error |\n|---|---|---|")
    for name, time_ms, err in rows:
        print(f"| {name} | {time_ms:.1f} | {'' if err is None else f'{err:.1e}'} |")


if __name__ == "__main__":
    main()
