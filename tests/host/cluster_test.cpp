// The pod index: who owns an IP, with the rules client-go users expect.
#include <fmt/format.h>

#include <map>

#include <boost/json.hpp>
#include <knp/types.hpp>

#include "cluster/cluster.hpp"
#include "helpers.hpp"

using namespace knp::host;

namespace {
boost::json::object obj(const char* text) { return boost::json::parse(text).as_object(); }
knp_addr ip(const char* s) { return *knp::parseAddr(s); }
std::string_view sv(knp_str s) { return {s.data, s.len}; }
}  // namespace

TEST_CASE("pods are indexed by every IP, with namespace and node facts") {
    ClusterState st;
    REQUIRE(
        st.apply(KNP_EVENT_ADDED, CoreKind::Namespace, obj(R"({"metadata":{"name":"prod","labels":{"team":"a"}}})")));
    REQUIRE(st.apply(KNP_EVENT_ADDED, CoreKind::Node,
                     obj(R"({"metadata":{"name":"n1","labels":{"zone":"z1"}},"status":{"addresses":[
                         {"type":"InternalIP","address":"192.168.0.1"},{"type":"Hostname","address":"n1"}]}})")));
    REQUIRE(st.apply(KNP_EVENT_ADDED, CoreKind::Pod, obj(R"({"metadata":{"name":"web","namespace":"prod",
        "labels":{"b":"2","a":"1"}},"spec":{"nodeName":"n1","containers":[{"ports":[
        {"name":"http","containerPort":8080},{"containerPort":53,"protocol":"UDP"}]}]},
        "status":{"phase":"Running","podIPs":[{"ip":"10.0.0.5"},{"ip":"fd00::5"}]}})")));
    auto snap = st.build("n1");
    for (const char* a : {"10.0.0.5", "fd00::5"}) {
        const knp_pod* p = snap->lookup(ip(a));
        REQUIRE(p != nullptr);
        CHECK(sv(p->name) == "web");
        CHECK(sv(p->pod_namespace) == "prod");
        REQUIRE(p->n_labels == 2);
        CHECK(sv(p->labels[0].key) == "a");  // sorted by key
        REQUIRE(p->n_namespace_labels == 2);
        CHECK(sv(p->namespace_labels[0].key) == "kubernetes.io/metadata.name");
        CHECK(sv(p->namespace_labels[0].value) == "prod");
        REQUIRE(p->n_node_labels == 1);
        CHECK(sv(p->node_labels[0].value) == "z1");
        REQUIRE(p->n_node_addresses == 1);
        REQUIRE(p->n_container_ports == 2);
        CHECK(sv(p->container_ports[0].name) == "http");
        CHECK(p->container_ports[0].protocol == KNP_PROTO_TCP);  // API default
        CHECK(p->container_ports[1].protocol == KNP_PROTO_UDP);
    }
    CHECK(snap->lookup(ip("10.0.0.6")) == nullptr);
}

TEST_CASE("terminal pods own no IP; the running pod wins a shared IP; hostNetwork pods are not pods") {
    ClusterState st;
    auto pod = [&](const char* name, const char* phase, const char* ipAddr, bool hostNet = false) {
        std::string j = fmt::format(
            R"({{"metadata":{{"name":"{}","namespace":"d"}},"spec":{{"hostNetwork":{}}},"status":{{"phase":"{}","podIP":"{}"}}}})",
            name, hostNet ? "true" : "false", phase, ipAddr);
        REQUIRE(st.apply(KNP_EVENT_ADDED, CoreKind::Pod, obj(j.c_str())));
    };
    pod("a-done", "Succeeded", "10.0.0.1");
    pod("b-run", "Running", "10.0.0.1");
    pod("c-pending", "Pending", "10.0.0.2");
    pod("d-run", "Running", "10.0.0.2");
    pod("e-failed", "Failed", "10.0.0.3");
    pod("f-host", "Running", "192.168.0.1", true);
    auto snap = st.build("");
    CHECK(sv(snap->lookup(ip("10.0.0.1"))->name) == "b-run");
    CHECK(sv(snap->lookup(ip("10.0.0.2"))->name) == "d-run");
    CHECK(snap->lookup(ip("10.0.0.3")) == nullptr);
    CHECK(snap->lookup(ip("192.168.0.1")) == nullptr);
    CHECK(snap->isNodeAddress(ip("192.168.0.1")));  // a hostNetwork pod's IP is its node's
    CHECK_FALSE(snap->isNodeAddress(ip("10.0.0.1")));
    CHECK(snap->find("d", "f-host") != nullptr);  // still a pod by name, flagged
    CHECK((snap->find("d", "f-host")->flags & KNP_POD_HOST_NETWORK) != 0);
    CHECK(snap->find("d", "e-failed") == nullptr);
}

TEST_CASE("deletes remove, and a malformed pod is refused with its field, keeping the old state") {
    ClusterState st;
    REQUIRE(st.apply(KNP_EVENT_ADDED, CoreKind::Pod,
                     obj(R"({"metadata":{"name":"p","namespace":"d"},"status":{"podIP":"10.0.0.1"}})")));
    auto bad = st.apply(KNP_EVENT_MODIFIED, CoreKind::Pod,
                        obj(R"({"metadata":{"name":"p","namespace":"d"},"spec":{"containers":[{"ports":[
                            {"containerPort":70000}]}]},"status":{"podIP":"10.0.0.1"}})"));
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().message == "Pod d/p: spec.containers[0].ports[0].containerPort: must be a number in 1..65535");
    CHECK(st.build("")->lookup(ip("10.0.0.1")) != nullptr);
    auto badIp = st.apply(KNP_EVENT_ADDED, CoreKind::Pod,
                          obj(R"({"metadata":{"name":"q","namespace":"d"},"status":{"podIP":"10.0.0.300"}})"));
    REQUIRE_FALSE(badIp.ok());
    CHECK(badIp.error().message == "Pod d/q: status.podIP: \"10.0.0.300\" is not an IP address");
    REQUIRE(st.apply(KNP_EVENT_DELETED, CoreKind::Pod, obj(R"({"metadata":{"name":"p","namespace":"d"}})")));
    CHECK(st.build("")->lookup(ip("10.0.0.1")) == nullptr);
}

TEST_CASE("forEachPod filters to the local node") {
    ClusterState st;
    REQUIRE(st.apply(
        KNP_EVENT_ADDED, CoreKind::Pod,
        obj(R"({"metadata":{"name":"a","namespace":"d"},"spec":{"nodeName":"n1"},"status":{"podIP":"10.0.0.1"}})")));
    REQUIRE(st.apply(
        KNP_EVENT_ADDED, CoreKind::Pod,
        obj(R"({"metadata":{"name":"b","namespace":"d"},"spec":{"nodeName":"n2"},"status":{"podIP":"10.0.0.2"}})")));
    auto snap = st.build("n1");
    auto count = [&](bool local) {
        int n = 0;
        snap->forEachPod(
            local,
            [](void* u, const knp_pod*) {
                ++*static_cast<int*>(u);
                return 0;
            },
            &n);
        return n;
    };
    CHECK(count(false) == 2);
    CHECK(count(true) == 1);
}

TEST_CASE("each build lists the pods that changed since the one before it (ABI 1.1 pod delta)") {
    ClusterState st;
    auto pod = [](const char* name, const char* ns, const char* node, const char* ip, const char* labels) {
        return obj(fmt::format(R"({{"metadata":{{"name":"{}","namespace":"{}","labels":{}}},"spec":{{"nodeName":"{}"}},
                                 "status":{{"podIP":"{}"}}}})",
                               name, ns, labels, node, ip)
                       .c_str());
    };
    REQUIRE(st.apply(KNP_EVENT_ADDED, CoreKind::Pod, pod("a", "d", "n1", "10.0.0.1", R"({"app":"x"})")));
    REQUIRE(st.apply(KNP_EVENT_ADDED, CoreKind::Pod, pod("b", "d", "n2", "10.0.0.2", "{}")));
    REQUIRE(st.apply(KNP_EVENT_ADDED, CoreKind::Pod, pod("c", "e", "n2", "10.0.0.3", "{}")));
    auto s1 = st.build("n1");
    CHECK(s1->generation() == 1);
    CHECK(s1->podChangesSince(0) == nullptr);  // the first build has nothing to compare with

    // One relabel: exactly that pod, with its old and new view.
    REQUIRE(st.apply(KNP_EVENT_MODIFIED, CoreKind::Pod, pod("a", "d", "n1", "10.0.0.1", R"({"app":"y"})")));
    auto s2 = st.build("n1");
    const auto* d = s2->podChangesSince(s1->generation());
    REQUIRE(d != nullptr);
    REQUIRE(d->size() == 1);
    const knp_pod_change* c = (*d)[0];
    REQUIRE((c->before != nullptr && c->after != nullptr));
    CHECK(sv(c->before->labels[0].value) == "x");
    CHECK(sv(c->after->labels[0].value) == "y");
    CHECK(s2->podChangesSince(s2->generation() - 2) == nullptr);  // not the build just before

    // A namespace relabel lists every pod of it; a node change every pod on it; a delete has no
    // `after`; a new pod no `before`. Each pod once.
    REQUIRE(st.apply(KNP_EVENT_ADDED, CoreKind::Namespace, obj(R"({"metadata":{"name":"d","labels":{"t":"1"}}})")));
    REQUIRE(st.apply(KNP_EVENT_ADDED, CoreKind::Node, obj(R"({"metadata":{"name":"n2"}})")));
    REQUIRE(st.apply(KNP_EVENT_DELETED, CoreKind::Pod, pod("a", "d", "n1", "10.0.0.1", "{}")));
    REQUIRE(st.apply(KNP_EVENT_ADDED, CoreKind::Pod, pod("z", "f", "n1", "10.0.0.9", "{}")));
    auto s3 = st.build("n1");
    d = s3->podChangesSince(s2->generation());
    REQUIRE(d != nullptr);
    std::map<std::string, std::pair<bool, bool>> seen;
    for (const knp_pod_change* ch : *d) {
        const knp_pod* any = ch->after != nullptr ? ch->after : ch->before;
        CHECK(seen.emplace(std::string(sv(any->name)), std::pair{ch->before != nullptr, ch->after != nullptr}).second);
    }
    CHECK(seen == std::map<std::string, std::pair<bool, bool>>{
                      {"a", {true, false}}, {"b", {true, true}}, {"c", {true, true}}, {"z", {false, true}}});
    // The `before` views stay readable while the newest build holds them.
    s2.reset();
    for (const knp_pod_change* ch : *d)
        if (ch->before != nullptr) CHECK(!sv(ch->before->name).empty());
    // One step of history: the next build drops this one's delta.
    auto s4 = st.build("n1");
    CHECK(s3->podChangesSince(2) == nullptr);
    REQUIRE(s4->podChangesSince(s3->generation()) != nullptr);
    CHECK(s4->podChangesSince(s3->generation())->empty());
}

TEST_CASE("a build shares every entry no event touched with the build before it") {
    ClusterState st;
    auto pod = [](const char* name, const char* ns, const char* node, const char* ip) {
        return obj(fmt::format(R"({{"metadata":{{"name":"{}","namespace":"{}"}},"spec":{{"nodeName":"{}"}},
                                 "status":{{"podIP":"{}"}}}})",
                               name, ns, node, ip)
                       .c_str());
    };
    REQUIRE(st.apply(KNP_EVENT_ADDED, CoreKind::Pod, pod("a", "d", "n1", "10.0.0.1")));
    REQUIRE(st.apply(KNP_EVENT_ADDED, CoreKind::Pod, pod("b", "d", "n2", "10.0.0.2")));
    REQUIRE(st.apply(KNP_EVENT_ADDED, CoreKind::Pod, pod("c", "e", "n1", "10.0.0.3")));
    auto s1 = st.build("n1");
    REQUIRE(st.apply(KNP_EVENT_MODIFIED, CoreKind::Pod, pod("a", "d", "n1", "10.0.0.1")));
    auto s2 = st.build("n1");
    CHECK(s2->find("d", "a") != s1->find("d", "a"));  // touched: built again
    CHECK(s2->find("d", "b") == s1->find("d", "b"));  // the same view, not a copy
    CHECK(s2->lookup(ip("10.0.0.2")) == s1->lookup(ip("10.0.0.2")));
    // A namespace's or a node's change rebuilds the views that carry its labels, and only those.
    REQUIRE(st.apply(KNP_EVENT_ADDED, CoreKind::Namespace, obj(R"({"metadata":{"name":"e","labels":{"t":"1"}}})")));
    REQUIRE(st.apply(KNP_EVENT_ADDED, CoreKind::Node, obj(R"({"metadata":{"name":"n2","labels":{"z":"1"}}})")));
    auto s3 = st.build("n1");
    const knp_pod* c = s3->find("e", "c");
    REQUIRE(c != nullptr);
    CHECK(c != s2->find("e", "c"));
    REQUIRE(c->n_namespace_labels == 2);
    CHECK(sv(c->namespace_labels[1].key) == "t");
    const knp_pod* b = s3->find("d", "b");
    REQUIRE(b != nullptr);
    CHECK(b != s2->find("d", "b"));
    REQUIRE(b->n_node_labels == 1);
    CHECK(s3->find("d", "a") == s2->find("d", "a"));
    // Older snapshots keep their own views intact.
    CHECK(s1->find("e", "c")->n_namespace_labels == 1);
    CHECK(s2->find("d", "b")->n_node_labels == 0);
}
