//! Finding dependency cycles among queued tasks (Tarjan's strongly connected
//! components, iterative so that a long chain cannot overflow the stack).
//!
//! The graph has an edge from a task to each of its dependencies that is still
//! queued, and an implicit edge from a task to the task before it in its agent's
//! queue (an agent's tasks leave in seq order, so a task also waits for its
//! predecessor). A task lies on a cycle exactly when it can never be dispatched
//! because of the queue itself, as opposed to waiting for a task not pushed yet.

/// The graph, with nodes numbered `0..n`.
pub(crate) struct Graph<'a> {
    /// Explicit edges of node `i`: `targets[starts[i]..starts[i + 1]]`.
    pub(crate) starts: &'a [usize],
    /// Edge targets.
    pub(crate) targets: &'a [usize],
    /// `true` where node `i` has an implicit edge to node `i - 1`.
    pub(crate) follows_previous: &'a [bool],
}

impl Graph<'_> {
    fn node_count(&self) -> usize {
        self.follows_previous.len()
    }

    /// The `k`-th successor of `node`, implicit edge first.
    fn successor(&self, node: usize, k: usize) -> Option<usize> {
        let implicit = usize::from(self.follows_previous[node]);
        if k < implicit {
            return Some(node - 1);
        }
        let at = self.starts[node] + (k - implicit);
        if at < self.starts[node + 1] {
            Some(self.targets[at])
        } else {
            None
        }
    }
}

const UNVISITED: usize = usize::MAX;

/// Every node that lies on a cycle (a component of two or more nodes, or a node
/// with an edge to itself), in ascending node order.
pub(crate) fn nodes_on_cycles(graph: &Graph<'_>) -> Vec<usize> {
    let n = graph.node_count();
    let mut index = vec![UNVISITED; n];
    let mut lowlink = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    // (node, next successor to look at)
    let mut calls: Vec<(usize, usize)> = Vec::new();
    let mut next_index = 0usize;
    let mut found = Vec::new();

    for root in 0..n {
        if index[root] != UNVISITED {
            continue;
        }
        calls.push((root, 0));
        index[root] = next_index;
        lowlink[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;

        // Bounded: every node is entered once and every edge followed once.
        while let Some(&mut (node, ref mut k)) = calls.last_mut() {
            if let Some(succ) = graph.successor(node, *k) {
                *k += 1;
                if index[succ] == UNVISITED {
                    index[succ] = next_index;
                    lowlink[succ] = next_index;
                    next_index += 1;
                    stack.push(succ);
                    on_stack[succ] = true;
                    calls.push((succ, 0));
                } else if on_stack[succ] {
                    lowlink[node] = lowlink[node].min(index[succ]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                lowlink[parent] = lowlink[parent].min(lowlink[node]);
            }
            if lowlink[node] == index[node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                let self_loop = component.len() == 1 && has_self_edge(graph, node);
                if component.len() > 1 || self_loop {
                    found.extend(component);
                }
            }
        }
    }
    found.sort_unstable();
    found
}

fn has_self_edge(graph: &Graph<'_>, node: usize) -> bool {
    graph.targets[graph.starts[node]..graph.starts[node + 1]].contains(&node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: usize, edges: &[(usize, usize)], follows: &[usize]) -> Vec<usize> {
        let mut starts = vec![0; n + 1];
        let mut targets = Vec::new();
        for node in 0..n {
            targets.extend(edges.iter().filter(|e| e.0 == node).map(|e| e.1));
            starts[node + 1] = targets.len();
        }
        let mut follows_previous = vec![false; n];
        for &f in follows {
            follows_previous[f] = true;
        }
        nodes_on_cycles(&Graph {
            starts: &starts,
            targets: &targets,
            follows_previous: &follows_previous,
        })
    }

    #[test]
    fn finds_explicit_implicit_and_self_cycles() {
        assert_eq!(run(3, &[(0, 1), (1, 2)], &[]), Vec::<usize>::new());
        assert_eq!(run(3, &[(0, 1), (1, 2), (2, 0)], &[]), vec![0, 1, 2]);
        assert_eq!(run(2, &[(1, 1)], &[]), vec![1]);
        // 0 depends on 1, 1 follows 0 in the same agent: a deadlock.
        assert_eq!(run(3, &[(0, 1)], &[1]), vec![0, 1]);
        // Two separate cycles and a bystander that waits on one of them.
        assert_eq!(
            run(6, &[(0, 1), (1, 0), (3, 4), (4, 3), (5, 0)], &[]),
            vec![0, 1, 3, 4]
        );
    }
}
