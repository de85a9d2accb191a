//! Static checks of a worker chain against what the registry (and the
//! loaded plugins' manifests) know: the functions exist, their fixed
//! arguments bind to their parameters, their imports resolve, and the
//! first function takes as many inputs as the node has input pipes.

use papy_core::{Args, Worker};

use crate::model::{CallSpec, PiperSpec};

/// The arguments of one call, as papy values.
///
/// # Errors
/// Both `args` and `kwargs`, or a value that is not a papy value.
pub fn call_args(call: &CallSpec) -> Result<Args, String> {
    let conv = |v: &toml::Value| papy_core::to_value(v).map_err(|e| e.to_string());
    if !call.args.is_empty() && !call.kwargs.is_empty() {
        return Err(format!(
            "`{}`: give `args` or `kwargs`, not both",
            call.function
        ));
    }
    if !call.kwargs.is_empty() {
        return Ok(Args::Named(
            call.kwargs
                .iter()
                .map(|(k, v)| Ok((k.clone(), conv(v)?)))
                .collect::<Result<_, String>>()?,
        ));
    }
    if call.args.is_empty() {
        return Ok(Args::None);
    }
    Ok(Args::Positional(
        call.args.iter().map(conv).collect::<Result<_, String>>()?,
    ))
}

/// The Worker of a piper: `(key path under the piper's `worker`, message)`
/// per problem: `["1"]` for the second call, `["1", "kwargs", "n"]` for one
/// of its arguments, `[]` for the chain as a whole.
///
/// # Errors
/// Unknown functions, bad arguments, missing imports, an empty chain.
pub fn worker_of(spec: &PiperSpec) -> Result<Worker, Vec<(Vec<String>, String)>> {
    worker_on(spec, &[])
}

/// As [`worker_of`], for a node whose resource's workers also provide
/// `provided` functions (`functions = [...]`): a name this process does not
/// hold but the workers do is accepted, with positional arguments only.
///
/// # Errors
/// As [`worker_of`], and keyword arguments for a provided function.
pub fn worker_on(
    spec: &PiperSpec,
    provided: &[String],
) -> Result<Worker, Vec<(Vec<String>, String)>> {
    if spec.worker.is_empty() {
        return Err(vec![(Vec::new(), "the worker chain is empty".into())]);
    }
    let mut workers = Vec::new();
    let mut problems = Vec::new();
    for (i, call) in spec.worker.iter().enumerate() {
        let elsewhere = provided.iter().any(|p| p == &call.function)
            && papy_core::registry::lookup(&call.function).is_err();
        if elsewhere {
            if !call.kwargs.is_empty() {
                problems.push((
                    vec![i.to_string(), "kwargs".into()],
                    format!(
                        "`{}` is provided by the resource's workers, so its parameters are not known here: give `args` (positional), or let `papy check --probe` learn them from a worker",
                        call.function
                    ),
                ));
                continue;
            }
            let f = papy_core::registry::Function::provided_elsewhere(
                call.function.clone(),
                spec.resource.as_deref().unwrap_or("the resource"),
            );
            match call_args(call).and_then(|a| {
                Worker::from_function(std::sync::Arc::new(f), a).map_err(|e| e.to_string())
            }) {
                Ok(w) => workers.push(w),
                Err(e) => problems.push((vec![i.to_string()], e)),
            }
            continue;
        }
        let args = match call_args(call) {
            Ok(a) => a,
            Err(e) => {
                problems.push((vec![i.to_string()], e));
                continue;
            }
        };
        match Worker::build(&call.function, args) {
            Ok(w) => {
                problems.extend(type_problems(&w, call).into_iter().map(|(mut p, e)| {
                    p.insert(0, i.to_string());
                    (p, e)
                }));
                workers.push(w);
            }
            Err(e) => {
                let mut path = vec![i.to_string()];
                path.extend(argument_at(call, &e));
                problems.push((path, with_provided_hint(e, provided)));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Worker::chain(workers).map_err(|e| vec![(Vec::new(), e.to_string())])
}

/// The error's text; for an unknown name with no close registered name,
/// the closest of the functions the resource's workers provide.
fn with_provided_hint(e: papy_core::Error, provided: &[String]) -> String {
    match &e {
        papy_core::Error::UnknownWorker { name, suggestions } if suggestions.is_empty() => {
            match crate::problem::did_you_mean(name, provided.iter().map(String::as_str)) {
                Some(c) => format!("{e}; did you mean `{c}`?"),
                None => e.to_string(),
            }
        }
        _ => e.to_string(),
    }
}

/// Where in a call an argument error is: the keyword argument it names
/// (`["kwargs", "x"]` for an unknown `x`), the positional arguments
/// (`["args"]` for too many), else the call itself (`[]`). A `--set` of
/// that argument is then what the problem names.
fn argument_at(call: &CallSpec, e: &papy_core::Error) -> Vec<String> {
    let papy_core::Error::Arguments { message, .. } = e else {
        return Vec::new();
    };
    let named = message
        .strip_prefix("no parameter named `")
        .and_then(|rest| rest.split('`').next());
    match named {
        Some(k) if call.kwargs.contains_key(k) => vec!["kwargs".into(), k.into()],
        _ if message.starts_with("takes ") && !call.args.is_empty() => vec!["args".into()],
        _ => Vec::new(),
    }
}

/// Problems of the inbox widths: the first function must take `pipes`
/// inputs (one per input pipe), each later one the single result before it.
pub fn width_problems(w: &Worker, pipes: usize) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, step) in w.steps().iter().enumerate() {
        let f = step.function();
        let want = if i == 0 { pipes } else { 1 };
        if let Some(n) = f.inputs {
            if n != want {
                let why = if i == 0 {
                    format!("the node has {want} input pipe(s)")
                } else {
                    "it receives the single result of the function before it".to_string()
                };
                out.push((i, format!("`{}` takes {n} input(s), but {why}", f.name)));
            }
        }
    }
    out
}

/// Fixed arguments whose value cannot be their parameter's type (see
/// [`crate::types::fits`]); parameters of unknown type are accepted.
fn type_problems(w: &Worker, call: &CallSpec) -> Vec<(Vec<String>, String)> {
    let Some(step) = w.steps().first() else {
        return Vec::new();
    };
    let f = step.function();
    let Some(params) = &f.params else {
        return Vec::new();
    };
    let given = call
        .kwargs
        .iter()
        .map(|(k, v)| (k.as_str(), v, vec!["kwargs".to_string(), k.clone()]))
        .chain(
            params
                .iter()
                .map(|p| p.name)
                .zip(call.args.iter())
                .enumerate()
                .map(|(i, (n, v))| (n, v, vec!["args".to_string(), i.to_string()])),
        );
    let mut out = Vec::new();
    for (name, v, path) in given {
        if let Some(p) = params.iter().find(|p| p.name == name && !p.ty.is_empty()) {
            if let Err(e) = crate::types::fits(p.ty, v) {
                out.push((path, format!("`{}`: argument `{name}`: {e}", f.name)));
            }
        }
    }
    out
}
