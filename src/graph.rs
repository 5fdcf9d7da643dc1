//! The resource dependency graph (petgraph): `resource_deps` edges between resources.
//!
//! Built from a [`TiltfileResult`]; a cycle is an error naming it. The engine asks it for the
//! order to start resources in and for the dependencies of each one.

use std::collections::HashMap;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use thiserror::Error;

use crate::model::{Resource, TiltfileResult};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum GraphError {
    #[error("cycle detected in resource dependency graph: {0}")]
    Cycle(String),
    #[error("resource \"{0}\" depends on itself")]
    SelfDependency(String),
}

/// Resources as nodes, with an edge from each dependency to its dependant.
#[derive(Debug, Clone)]
pub struct ResourceGraph {
    graph: DiGraph<String, ()>,
    index: HashMap<String, NodeIndex>,
}

impl ResourceGraph {
    /// Builds the graph; `resource_deps` naming unknown resources must already be dropped.
    pub fn new(result: &TiltfileResult) -> Result<Self, GraphError> {
        Self::from_resources(&result.resources)
    }

    pub fn from_resources(resources: &[Resource]) -> Result<Self, GraphError> {
        let mut graph = DiGraph::new();
        let mut index = HashMap::new();
        for r in resources {
            index.insert(r.name.clone(), graph.add_node(r.name.clone()));
        }
        for r in resources {
            let to = index[&r.name];
            for dep in &r.resource_deps {
                if dep == &r.name {
                    return Err(GraphError::SelfDependency(dep.clone()));
                }
                if let Some(&from) = index.get(dep) {
                    graph.update_edge(from, to, ());
                }
            }
        }
        let this = ResourceGraph { graph, index };
        if let Some(cycle) = this.find_cycle(resources) {
            return Err(GraphError::Cycle(cycle));
        }
        Ok(this)
    }

    /// A cycle written as `a -> b -> a`, following `resource_deps` from the first resource
    /// (in declaration order) that is part of one.
    fn find_cycle(&self, resources: &[Resource]) -> Option<String> {
        let sccs = tarjan_scc(&self.graph);
        let cyclic: Vec<&Vec<NodeIndex>> = sccs.iter().filter(|c| c.len() > 1).collect();
        let component = resources.iter().find_map(|r| {
            let node = self.index[&r.name];
            cyclic
                .iter()
                .find(|c| c.contains(&node))
                .map(|c| (node, *c))
        });
        let (start, members) = component?;
        let by_name: HashMap<&str, &Resource> =
            resources.iter().map(|r| (r.name.as_str(), r)).collect();
        let mut path = vec![start];
        let mut current = start;
        loop {
            let name = &self.graph[current];
            let next = by_name[name.as_str()]
                .resource_deps
                .iter()
                .filter_map(|d| self.index.get(d).copied())
                .find(|n| members.contains(n))?;
            path.push(next);
            if next == start {
                break;
            }
            if path[..path.len() - 1].contains(&next) {
                let first = path.iter().position(|n| *n == next).unwrap_or(0);
                path.drain(..first);
                break;
            }
            current = next;
        }
        Some(
            path.iter()
                .map(|n| self.graph[*n].as_str())
                .collect::<Vec<_>>()
                .join(" -> "),
        )
    }

    /// Names of the resources `name` depends on directly.
    pub fn dependencies(&self, name: &str) -> Vec<&str> {
        self.index
            .get(name)
            .map(|&n| {
                self.graph
                    .neighbors_directed(n, petgraph::Direction::Incoming)
                    .map(|d| self.graph[d].as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Names of the resources that depend on `name` directly.
    pub fn dependants(&self, name: &str) -> Vec<&str> {
        self.index
            .get(name)
            .map(|&n| {
                self.graph
                    .neighbors_directed(n, petgraph::Direction::Outgoing)
                    .map(|d| self.graph[d].as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResourceType;

    fn res(name: &str, deps: &[&str]) -> Resource {
        let mut r = Resource::new(name, ResourceType::Local);
        r.resource_deps = deps.iter().map(|d| d.to_string()).collect();
        r
    }

    #[test]
    fn reports_cycle_in_dependency_order() {
        let err =
            ResourceGraph::from_resources(&[res("a", &["c"]), res("b", &["a"]), res("c", &["b"])])
                .unwrap_err();
        assert_eq!(err, GraphError::Cycle("a -> c -> b -> a".into()));
    }

    #[test]
    fn edges_follow_deps() {
        let g = ResourceGraph::from_resources(&[res("a", &[]), res("b", &["a"])]).unwrap();
        assert_eq!(g.dependencies("b"), vec!["a"]);
        assert_eq!(g.dependants("a"), vec!["b"]);
    }
}
