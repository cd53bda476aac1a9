//! What a topic is, and how long its name may be: definitions below
//! `error`, so that an `Error` can name them.

/// TOPIC or QUEUE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// A log with groups.
    Topic,
    /// A topic with one implicit group, retention until consumed.
    Queue,
}

impl TopicKind {
    /// `topic` or `queue`, as messages name it.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            TopicKind::Topic => "topic",
            TopicKind::Queue => "queue",
        }
    }
}

/// The longest topic, queue or group name, in bytes (Kafka's limit).
pub(crate) const MAX_NAME_BYTES: usize = 249;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nouns_are_lowercase_words() {
        assert_eq!(TopicKind::Topic.noun(), "topic");
        assert_eq!(TopicKind::Queue.noun(), "queue");
    }
}
