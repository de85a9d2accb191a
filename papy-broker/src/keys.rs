//! The Redis keys of one run.

/// The keys of run `id`: `papy:<id>:tasks`, `:results`, `:dead`, `:run`,
/// `:jobs`.
///
/// ```
/// use papy_broker::RunKeys;
/// let k = RunKeys::new("r1");
/// assert_eq!(k.tasks, "papy:r1:tasks");
/// assert_eq!(k.dead, "papy:r1:dead");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunKeys {
    /// The run id.
    pub run: String,
    /// Task batches (host -> workers), read by the consumer group.
    pub tasks: String,
    /// Results (workers -> host).
    pub results: String,
    /// Batches delivered more than `max_attempts` times.
    pub dead: String,
    /// A hash with the run's settings and state.
    pub state: String,
    /// A hash: which task entry holds each job (`<session>:<job>` -> entry
    /// id), so that a replayed entry is not run again; and `replays`, how
    /// many were acknowledged unrun.
    pub jobs: String,
}

/// The consumer group every worker of a run reads in.
pub const GROUP: &str = "papy-workers";

impl RunKeys {
    /// The keys of run `id`.
    pub fn new(id: &str) -> RunKeys {
        RunKeys {
            run: id.to_string(),
            tasks: format!("papy:{id}:tasks"),
            results: format!("papy:{id}:results"),
            dead: format!("papy:{id}:dead"),
            state: format!("papy:{id}:run"),
            jobs: format!("papy:{id}:jobs"),
        }
    }

    /// Every key of the run.
    pub fn all(&self) -> [&str; 5] {
        [
            &self.tasks,
            &self.results,
            &self.dead,
            &self.state,
            &self.jobs,
        ]
    }
}
