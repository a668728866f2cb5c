//! Manifest pipeline: multi-document YAML in, the same stream out with ZooKeeper StatefulSets rewritten. (Skeleton.)
