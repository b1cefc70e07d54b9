//! Evaluator throughput: a prepared scenario evaluates mappings without re-reading the
//! model. Graphs are built here with torchvision-like VGG16 / ResNet-50 shapes and costs,
//! so the benchmark does not depend on the model zoo.

use std::collections::BTreeMap;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use dicesim_plan::graph::{Graph, Layer, TensorInfo};
use dicesim_sim::platform::Platform;
use dicesim_sim::{strategy, PreparedScenario, Workload};

struct B {
    g: Graph,
}

impl B {
    fn new(input: &str, shape: [usize; 3]) -> B {
        let mut g = Graph {
            name: "bench".into(),
            layers: vec![],
            tensors: BTreeMap::new(),
            inputs: vec![input.into()],
            outputs: vec![],
        };
        let bytes = (shape.iter().product::<usize>() * 4) as u64;
        g.tensors.insert(
            input.into(),
            TensorInfo {
                name: input.into(),
                shape: shape.to_vec(),
                dtype: 1,
                bytes,
                producer: None,
                consumers: vec![],
            },
        );
        B { g }
    }
    fn layer(
        &mut self,
        name: &str,
        ins: &[&str],
        out: [usize; 3],
        flops: u64,
        params: u64,
    ) -> String {
        let li = self.g.layers.len();
        let bytes = (out.iter().product::<usize>() * 4) as u64;
        let mut in_bytes = 0;
        for i in ins {
            let t = self.g.tensors.get_mut(*i).unwrap();
            t.consumers.push(li);
            in_bytes += t.bytes;
        }
        let o = format!("{name}_out");
        self.g.tensors.insert(
            o.clone(),
            TensorInfo {
                name: o.clone(),
                shape: out.to_vec(),
                dtype: 1,
                bytes,
                producer: Some(li),
                consumers: vec![],
            },
        );
        self.g.layers.push(Layer {
            name: name.into(),
            op: "Op".into(),
            inputs: ins.iter().map(|s| s.to_string()).collect(),
            outputs: vec![o.clone()],
            output_shape: out.to_vec(),
            flops,
            params_bytes: params,
            output_bytes: bytes,
            input_bytes: in_bytes,
        });
        o
    }
    fn conv(
        &mut self,
        name: &str,
        x: &str,
        cin: usize,
        cout: usize,
        k: usize,
        hw: usize,
    ) -> String {
        let f = 2 * (cin * cout * k * k * hw * hw) as u64;
        let c = self.layer(
            name,
            &[x],
            [cout, hw, hw],
            f,
            (cin * cout * k * k * 4) as u64,
        );
        self.layer(
            &format!("{name}.relu"),
            &[&c],
            [cout, hw, hw],
            (cout * hw * hw) as u64,
            0,
        )
    }
    fn finish(mut self) -> Graph {
        self.g.outputs = self
            .g
            .tensors
            .values()
            .filter(|t| t.producer.is_some() && t.consumers.is_empty())
            .map(|t| t.name.clone())
            .collect();
        self.g
    }
}

fn vgg16() -> Graph {
    let mut b = B::new("input", [3, 224, 224]);
    let mut x = "input".to_string();
    let (mut cin, mut hw) = (3, 224);
    for (stage, (n, c)) in [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]
        .into_iter()
        .enumerate()
    {
        for i in 0..n {
            x = b.conv(&format!("conv{stage}_{i}"), &x, cin, c, 3, hw);
            cin = c;
        }
        hw /= 2;
        x = b.layer(
            &format!("pool{stage}"),
            &[&x],
            [c, hw, hw],
            (c * hw * hw * 4) as u64,
            0,
        );
    }
    for (i, (a, o)) in [(512 * 49, 4096), (4096, 4096), (4096, 1000)]
        .into_iter()
        .enumerate()
    {
        x = b.layer(
            &format!("fc{i}"),
            &[&x],
            [o, 1, 1],
            2 * (a * o) as u64,
            (a * o * 4) as u64,
        );
    }
    b.finish()
}

fn resnet50() -> Graph {
    let mut b = B::new("input", [3, 224, 224]);
    let mut x = b.conv("conv1", "input", 3, 64, 7, 112);
    x = b.layer("maxpool", &[&x], [64, 56, 56], 64 * 56 * 56 * 9, 0);
    let (mut cin, mut hw) = (64, 56);
    for (s, (n, w)) in [(3, 64), (4, 128), (6, 256), (3, 512)]
        .into_iter()
        .enumerate()
    {
        for i in 0..n {
            if i == 0 && s > 0 {
                hw /= 2;
            }
            let p = format!("layer{}.{i}", s + 1);
            let a = b.conv(&format!("{p}.conv1"), &x, cin, w, 1, hw);
            let c = b.conv(&format!("{p}.conv2"), &a, w, w, 3, hw);
            let d = b.layer(
                &format!("{p}.conv3"),
                &[&c],
                [w * 4, hw, hw],
                2 * (w * w * 4 * hw * hw) as u64,
                (w * w * 16) as u64,
            );
            let short = if i == 0 {
                b.layer(
                    &format!("{p}.downsample"),
                    &[&x],
                    [w * 4, hw, hw],
                    2 * (cin * w * 4 * hw * hw) as u64,
                    (cin * w * 16) as u64,
                )
            } else {
                x.clone()
            };
            let sum = b.layer(
                &format!("{p}.add"),
                &[&d, &short],
                [w * 4, hw, hw],
                (w * 4 * hw * hw) as u64,
                0,
            );
            x = b.layer(
                &format!("{p}.relu"),
                &[&sum],
                [w * 4, hw, hw],
                (w * 4 * hw * hw) as u64,
                0,
            );
            cin = w * 4;
        }
    }
    x = b.layer("avgpool", &[&x], [2048, 1, 1], 2048 * 49, 0);
    b.layer("fc", &[&x], [1000, 1, 1], 2 * 2048 * 1000, 2048 * 1000 * 4);
    b.finish()
}

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bench(c: &mut Criterion) {
    let mixed4 = Platform::load(&root().join("platforms/mixed4-gige.toml")).unwrap();
    let wifi = Platform::load(&root().join("platforms/wifi5-mixed3.toml")).unwrap();
    let cases = [
        ("vgg16_4dev_1frame", vgg16(), mixed4.clone(), 1),
        ("vgg16_4dev_100frames", vgg16(), mixed4, 100),
        ("resnet50_3dev_wifi_1frame", resnet50(), wifi.clone(), 1),
        ("resnet50_3dev_wifi_100frames", resnet50(), wifi, 100),
    ];
    for (name, g, p, frames) in cases {
        let prep = PreparedScenario::new(
            g,
            p,
            Workload {
                frames,
                period_ns: 0,
            },
        );
        let units: Vec<usize> = (0..prep.platform.units.len()).collect();
        let m = strategy::even(&prep, &units).unwrap();
        let assign = prep.assignment(&m).unwrap();
        c.bench_function(name, |b| {
            b.iter(|| {
                prep.evaluate_assignment(std::hint::black_box(&assign))
                    .unwrap()
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
