//! Helpers shared by the simulator's test files: small graphs and temporary folders.
// Each test file compiles this module on its own and uses only some of the helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;

use dicesim_plan::graph::{Graph, Layer, TensorInfo};

/// A graph from (name, flops, inputs, outputs) with every tensor `bytes` big.
pub fn graph(layers: &[(&str, u64, &[&str], &[&str])], inputs: &[&str], bytes: u64) -> Graph {
    let mut tensors: BTreeMap<String, TensorInfo> = BTreeMap::new();
    let t = |n: &str| TensorInfo {
        name: n.into(),
        shape: vec![bytes as usize / 4],
        dtype: 1,
        bytes,
        producer: None,
        consumers: vec![],
    };
    for i in inputs {
        tensors.insert(i.to_string(), t(i));
    }
    let mut ls = Vec::new();
    for (li, (name, flops, ins, outs)) in layers.iter().enumerate() {
        for i in *ins {
            tensors
                .get_mut(*i)
                .expect("input declared")
                .consumers
                .push(li);
        }
        for o in *outs {
            let mut ti = t(o);
            ti.producer = Some(li);
            tensors.insert(o.to_string(), ti);
        }
        ls.push(Layer {
            name: name.to_string(),
            op: "Conv".into(),
            class: dicesim_plan::opclass::OpClass::Conv,
            inputs: ins.iter().map(|s| s.to_string()).collect(),
            outputs: outs.iter().map(|s| s.to_string()).collect(),
            output_shape: vec![1],
            flops: *flops,
            params_bytes: 0,
            output_bytes: bytes * outs.len() as u64,
            input_bytes: bytes * ins.len() as u64,
        });
    }
    let outputs = tensors
        .values()
        .filter(|t| t.producer.is_some() && t.consumers.is_empty())
        .map(|t| t.name.clone())
        .collect();
    Graph {
        name: "test".into(),
        layers: ls,
        tensors,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs,
    }
}

#[path = "../../../tests/common/tmp_dir.rs"]
mod tmp_dir;
pub use tmp_dir::TmpDir;

/// A fresh, empty temporary folder `dicesim-<suite>-<name>-` (and a random suffix) for one
/// test, removed with what it holds when the test ends (passed or failed).
pub fn tmp(suite: &str, name: &str) -> TmpDir {
    tmp_dir::with_prefix(&format!("dicesim-{suite}-{name}-"))
}
