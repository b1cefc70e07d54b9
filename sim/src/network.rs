//! Network resources and routes.
//!
//! Each direction of a full-duplex link is one resource; a shared medium (Wi-Fi cell) is one
//! resource for both directions and all its ends. Routes are fewest-hop paths (breadth-first
//! search, neighbours visited in link declaration order, then end order, so ties always
//! resolve the same way). How flows share the resources is [`crate::sharing`]'s.

use crate::platform::Platform;

/// A network resource with a capacity.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Index of the link it belongs to.
    pub link: usize,
    /// Capacity [bytes/ns].
    pub capacity: f64,
}

/// A route between two devices.
#[derive(Debug, Clone, Default)]
pub struct Route {
    /// Resources crossed, in order.
    pub resources: Vec<usize>,
    /// Links crossed, in order.
    pub links: Vec<usize>,
    /// Sum of the links' latencies [ns].
    pub latency_ns: u64,
    /// Smallest capacity on the route [bytes/ns].
    pub bottleneck: f64,
}

/// Resources of a platform and the routes between every pair of devices.
#[derive(Debug, Clone)]
pub struct Network {
    /// All resources.
    pub resources: Vec<Resource>,
    /// `routes[a * n_devices + b]`: route from device a to device b (`None` if unreachable
    /// or a == b).
    pub routes: Vec<Option<Route>>,
    /// The memory system, shared by jobs running at once on one device.
    pub memory: MemorySystem,
    n_devices: usize,
}

/// Memory-bandwidth resources: the jobs running at once on one device share them (see
/// `docs/simulator.md`, "Cores and memory bandwidth"). Resource `u` is unit `u`'s own limit
/// (set per job to the rate at which the job alone moves its bytes), `n_units + p` physical
/// unit `p`'s bandwidth, `2 n_units + d` device `d`'s.
#[derive(Debug, Clone)]
pub struct MemorySystem {
    /// Capacities [bytes/ns] (the per-unit limits are set per job).
    pub capacity: Vec<f64>,
    /// `routes[u]`: the resources a job on unit `u` crosses.
    pub routes: Vec<[usize; 3]>,
}

impl MemorySystem {
    /// The resources of `p`'s units and devices.
    pub fn new(p: &Platform) -> MemorySystem {
        let nu = p.units.len();
        let capacity = (p.units.iter().map(|u| u.mem_gbps))
            .chain(p.units.iter().map(|u| u.mem_gbps))
            .chain(p.devices.iter().map(|d| d.mem_gbps))
            .collect();
        let routes = (p.units.iter().enumerate())
            .map(|(i, u)| [i, nu + u.parent, 2 * nu + u.device])
            .collect();
        MemorySystem { capacity, routes }
    }
}

/// For each node (devices, then switches): its (neighbour, link, resource) in link order.
type Adjacency = Vec<Vec<(usize, usize, usize)>>;

/// Per node, the (previous node, link, resource) it is reached by on a shortest path.
type Parents = Vec<Option<(usize, usize, usize)>>;

impl Network {
    /// Builds resources and routes for `p`.
    pub fn new(p: &Platform) -> Network {
        let (resources, adj) = resources_and_adjacency(p);
        let nd = p.devices.len();
        let mut routes = vec![None; nd * nd];
        for src in 0..nd {
            let parent = shortest_path_parents(&adj, src);
            for dst in (0..nd).filter(|&d| d != src) {
                if parent[dst].is_some() {
                    routes[src * nd + dst] = Some(route_to(p, &resources, &parent, dst));
                }
            }
        }
        Network {
            resources,
            routes,
            memory: MemorySystem::new(p),
            n_devices: nd,
        }
    }

    /// Route from device `a` to device `b`.
    pub fn route(&self, a: usize, b: usize) -> Option<&Route> {
        self.routes[a * self.n_devices + b].as_ref()
    }
}

/// The network's resources (a shared medium is one; a point-to-point link one per
/// direction) and the adjacency of its nodes.
fn resources_and_adjacency(p: &Platform) -> (Vec<Resource>, Adjacency) {
    let mut resources = Vec::new();
    let mut adj: Adjacency = vec![Vec::new(); p.devices.len() + p.switches.len()];
    for (li, l) in p.links.iter().enumerate() {
        // Mbit/s -> bytes/ns
        let capacity = l.bandwidth_mbps * 1e6 / 8.0 / 1e9;
        let r = resources.len();
        resources.push(Resource { link: li, capacity });
        if l.shared_medium {
            for &a in &l.ends {
                for &b in l.ends.iter().filter(|&&b| b != a) {
                    adj[a].push((b, li, r));
                }
            }
        } else {
            let (a, b) = (l.ends[0], l.ends[1]);
            resources.push(Resource { link: li, capacity });
            adj[a].push((b, li, r));
            adj[b].push((a, li, r + 1));
        }
    }
    (resources, adj)
}

/// Breadth-first search from `src`: how each node is first reached (ties: link
/// declaration order, then end order); `None` for `src` and the unreachable nodes.
fn shortest_path_parents(adj: &Adjacency, src: usize) -> Parents {
    let mut parent: Parents = vec![None; adj.len()];
    let mut seen = vec![false; adj.len()];
    seen[src] = true;
    let mut queue = std::collections::VecDeque::from([src]);
    while let Some(n) = queue.pop_front() {
        for &(m, li, r) in &adj[n] {
            if !seen[m] {
                seen[m] = true;
                parent[m] = Some((n, li, r));
                queue.push_back(m);
            }
        }
    }
    parent
}

/// The route to `dst` along `parent`: its resources and links in order, latency and
/// narrowest capacity.
fn route_to(p: &Platform, resources: &[Resource], parent: &Parents, dst: usize) -> Route {
    let mut route = Route {
        bottleneck: f64::INFINITY,
        ..Route::default()
    };
    let mut n = dst;
    while let Some((prev, li, r)) = parent[n] {
        route.resources.push(r);
        route.links.push(li);
        route.latency_ns += (p.links[li].latency_us * 1000.0).round() as u64;
        route.bottleneck = route.bottleneck.min(resources[r].capacity);
        n = prev;
    }
    route.resources.reverse();
    route.links.reverse();
    route
}
