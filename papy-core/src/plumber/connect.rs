//! Connecting a Dagger into streams: each piper becomes an iterator
//! pipeline (join -> consume -> evaluation -> produce -> observe), fanned
//! out to its consumers, with parallel pipers as tasks of their NuMaps.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::dagger::Dagger;
use crate::error::{Error, Result};
use crate::numap::NuMap;
use crate::piper::adapters::{
    distribute, tee, Consume, Gate, InboxStream, Linear, Merge, Observe, Produce, RunCtl, Stream,
    Zip,
};
use crate::piper::Piper;
use crate::pool::WorkerTask;
use crate::stats::NodeCounters;

/// The connected pipeline: output streams, counters, and the NuMaps used.
pub(crate) struct Connected {
    pub(crate) outputs: Vec<(String, Stream)>,
    pub(crate) counters: BTreeMap<String, Arc<NodeCounters>>,
    pub(crate) numaps: Vec<NuMap>,
}

fn node_stream(
    piper: &Piper,
    inputs: Vec<Stream>,
    is_input: bool,
    counters: &Arc<NodeCounters>,
    run: &Arc<RunCtl>,
) -> Result<Stream> {
    let name = piper.name().to_string();
    let stride = piper.stride();
    let o = piper.options();
    let mut inbox: InboxStream = Box::new(Zip::new(inputs, name.clone(), counters.clone()));
    if o.consume > 1 {
        inbox = Box::new(Consume {
            src: inbox,
            n: o.consume,
        });
    }
    let evaluated: Stream = match piper.numap() {
        None => Box::new(Linear {
            src: inbox,
            worker: piper.worker().clone(),
            node: name.clone(),
            index: 0,
            counters: counters.clone(),
        }),
        Some(numap) => {
            let k = o.spawn;
            let opts = o.task_options(!is_input);
            let parts = if k == 1 {
                vec![inbox]
            } else {
                distribute(inbox, k, stride)
            };
            let mut readers = Vec::with_capacity(k);
            for (j, part) in parts.into_iter().enumerate() {
                let task = Arc::new(
                    WorkerTask::new(piper.worker().clone(), name.clone())
                        .spawned(j, k, stride)
                        .counting(counters.clone()),
                );
                let id = numap.add_task_fn(task, part, opts.clone())?;
                readers.push(numap.results(id)?);
            }
            if k == 1 {
                Box::new(readers.remove(0))
            } else {
                Box::new(Merge {
                    readers,
                    chunk: stride,
                    current: 0,
                    taken: 0,
                })
            }
        }
    };
    let produced: Stream = if o.produce > 1 {
        Box::new(Produce {
            src: evaluated,
            m: o.produce,
            repeat: o.repeat,
            pending: VecDeque::new(),
            node: name.clone(),
            index: 0,
        })
    } else {
        evaluated
    };
    Ok(Box::new(Observe {
        src: produced,
        node: name,
        index: 0,
        counters: counters.clone(),
        debug: o.debug,
        run: run.clone(),
    }))
}

/// Builds every node's stream in topological order. `sources` holds one
/// external input per input piper, by name.
pub(crate) fn connect(
    dagger: &Dagger,
    mut sources: BTreeMap<String, Stream>,
    run: &Arc<RunCtl>,
) -> Result<Connected> {
    let order = dagger.order();
    let mut numaps: Vec<NuMap> = Vec::new();
    for n in order.iter().filter_map(|p| p.numap()) {
        if numaps.iter().any(|m| m.same(n)) {
            continue;
        }
        if n.is_running() {
            return Err(Error::State {
                op: "start a pipeline on",
                what: format!("NuMap `{}`", n.name()),
                state: "running".into(),
            });
        }
        n.clear_tasks()?;
        numaps.push(n.clone());
    }
    let result = connect_nodes(dagger, &order, &mut sources, run);
    match result {
        Ok((outputs, counters)) => Ok(Connected {
            outputs,
            counters,
            numaps,
        }),
        Err(e) => {
            for n in &numaps {
                let _ = n.clear_tasks();
            }
            Err(e)
        }
    }
}

type Built = (Vec<(String, Stream)>, BTreeMap<String, Arc<NodeCounters>>);

fn connect_nodes(
    dagger: &Dagger,
    order: &[&Piper],
    sources: &mut BTreeMap<String, Stream>,
    run: &Arc<RunCtl>,
) -> Result<Built> {
    let mut readers: BTreeMap<String, VecDeque<Stream>> = BTreeMap::new();
    let mut counters = BTreeMap::new();
    let mut outputs = Vec::new();
    for piper in order {
        let name = piper.name();
        let up = dagger.upstream(name)?;
        let is_input = up.is_empty();
        let inputs: Vec<Stream> = if is_input {
            let src = sources
                .remove(name)
                .ok_or_else(|| Error::Inputs(format!("no input given for input piper `{name}`")))?;
            vec![Box::new(Gate {
                src,
                stop: run.stop.clone(),
                stride: piper.stride() as u64,
                count: 0,
            })]
        } else {
            up.iter()
                .map(|u| {
                    readers
                        .get_mut(u.name())
                        .and_then(VecDeque::pop_front)
                        .ok_or_else(|| {
                            Error::Graph(format!("internal: no stream left from `{}`", u.name()))
                        })
                })
                .collect::<Result<_>>()?
        };
        let c = Arc::new(
            NodeCounters::new(piper.options().track).record_on(run.timeline.clone(), name),
        );
        counters.insert(name.to_string(), c.clone());
        let stream = node_stream(piper, inputs, is_input, &c, run)?;
        let down = dagger.downstream(name)?.len();
        if down == 0 {
            outputs.push((name.to_string(), stream));
        } else {
            readers.insert(name.to_string(), tee(stream, down).into());
        }
    }
    Ok((outputs, counters))
}
