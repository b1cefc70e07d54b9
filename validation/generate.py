#!/usr/bin/env python3
"""Writes the validation suite: scenarios over 3 models x 2 rig-scale platforms, with the
`single`, `even` and `pipeedge` strategies and seeded random contiguous explicit mappings.

Usage: validation/generate.py [DICESIM_BINARY]   (default target/release/dicesim)
Re-running it rewrites the same files (fixed seed). `dicesim validate --suite validation`
runs them all (as root); `validation/small/` is the CI subset.
"""
import json, os, random, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))
dicesim = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "target", "release", "dicesim")
MODELS = ["resnet18", "squeezenet1_1", "mobilenet_v2"]
SIZE = 64
FRAMES = 40
SMALL = ["resnet18-eth100-even.toml", "squeezenet1_1-line-pipeedge.toml", "mobilenet_v2-eth100-rand1.toml"]

def device(name, gflops):
    return (f'[[device]]\nname = "{name}"\nmemory_mb = 2048\nidle_w = 1.0\n'
            f'  [[device.unit]]\n  name = "cpu"\n  kind = "cpu"\n  cores = 1\n'
            f'  gflops = {gflops}\n  mem_gbps = 4.0\n  busy_w = 2.0\n  layer_overhead_us = 5.0\n')

def link(name, a, b, mbps, lat):
    return (f'[[link]]\nname = "{name}"\nends = ["{a}", "{b}"]\n'
            f'bandwidth_mbps = {mbps}\nlatency_us = {lat}\n')

PLATFORMS = {
    # three boards of different speeds on a 100 Mbit/s switch
    "eth100": ("3 rig boards (8, 12, 6 GFLOP/s) on a 100 Mbit/s switch",
               [("d0", 8.0), ("d1", 12.0), ("d2", 6.0)],
               lambda: '[[switch]]\nname = "sw"\n' + "".join(
                   link(f"d{i}-sw", f"d{i}", "sw", 100.0, 200.0) for i in range(3))),
    # a line of three boards over slower links (d0 to d2 crosses both)
    "line": ("3 rig boards (16, 8, 4 GFLOP/s) in a line: 50 and 20 Mbit/s links",
             [("d0", 16.0), ("d1", 8.0), ("d2", 4.0)],
             lambda: link("d0-d1", "d0", "d1", 50.0, 500.0) + link("d1-d2", "d1", "d2", 20.0, 1000.0)),
}

def layers(model):
    os.makedirs("/tmp/dicesim-valgen", exist_ok=True)
    subprocess.run([dicesim, "zoo", "build", model, "--input-size", str(SIZE), "--out", "/tmp/dicesim-valgen"],
                   check=True, capture_output=True)
    out = subprocess.run([dicesim, "inspect", f"/tmp/dicesim-valgen/{model}.onnx", "--json"],
                         check=True, capture_output=True, text=True).stdout
    return [l["name"] for l in json.loads(out)["layers"]]

def main():
    rng = random.Random(7)
    for sub in ["", "platforms", "mappings"]:
        d = os.path.join(here, sub)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.endswith(".toml"):
                os.remove(os.path.join(d, f))
    for p, (title, devs, links) in PLATFORMS.items():
        with open(os.path.join(here, "platforms", f"{p}.toml"), "w") as f:
            f.write(f'name = "{title}"\n' + "".join(device(n, g) for n, g in devs) + links())
    n = 0
    for model in MODELS:
        names = layers(model)
        for p, (title, devs, _) in PLATFORMS.items():
            def scenario(tag, strategy, mapping=None):
                nonlocal n
                n += 1
                s = (f'name = "{model} on {p}, {tag}"\nseed = 1\n[model]\nzoo = "{model}"\n'
                     f'input_size = {SIZE}\n[platform]\nfile = "platforms/{p}.toml"\n'
                     f'[mapping]\nstrategy = "{strategy}"\n')
                if mapping:
                    s += f'file = "{mapping}"\n'
                s += f'[workload]\nframes = {FRAMES}\nperiod_ms = 0.0\n'
                with open(os.path.join(here, f"{model}-{p}-{tag}.toml"), "w") as f:
                    f.write(s)
            for strategy in ["single", "even", "pipeedge"]:
                scenario(strategy, strategy)
            for k in range(2):
                parts = rng.choice([2, 3])
                cuts = sorted(rng.sample(range(3, len(names) - 3), parts - 1))
                order = rng.sample([d for d, _ in devs], parts)
                bounds = [0] + cuts + [len(names)]
                mfile = f"mappings/{model}-{p}-rand{k}.toml"
                with open(os.path.join(here, mfile), "w") as f:
                    f.write(f"# seeded random contiguous {parts}-way split\n[units]\n")
                    for i in range(parts):
                        f.write(f'"{order[i]}.cpu" = {{ from = "{names[bounds[i]]}", to = "{names[bounds[i + 1] - 1]}" }}\n')
                scenario(f"rand{k}", "explicit", mfile)
    # the CI subset: one scenario per model, both platforms, fewer frames
    small = os.path.join(here, "small")
    os.makedirs(small, exist_ok=True)
    for f in os.listdir(small):
        if f.endswith(".toml"):
            os.remove(os.path.join(small, f))
    for name in SMALL:
        text = open(os.path.join(here, name)).read()
        text = text.replace('file = "platforms/', 'file = "../platforms/')
        text = text.replace('file = "mappings/', 'file = "../mappings/')
        text = text.replace(f"frames = {FRAMES}", "frames = 16")
        with open(os.path.join(small, name), "w") as f:
            f.write(text)
    print(f"{n} scenarios written to {here}, {len(SMALL)} to {small}")

main()
