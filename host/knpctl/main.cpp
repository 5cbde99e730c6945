// knpctl: inspect and exercise the plugin pipeline without a cluster.
//
//   knpctl plugins   [--pipeline FILE] [--plugin-dir DIR]...   the pipeline as loaded
//   knpctl validate  [FILE]                                     check a pipeline.yaml fully
//   knpctl inspect   FILE.so                                    a plugin's descriptor
//   knpctl simulate  --state STATE [--pipeline FILE] [--probes FILE] [--probe 'SRC DST PROTO/PORT']...
//   knpctl dataplane                                            what this kernel offers knpd
//   knpctl explain   SRC DST PROTO/PORT [--socket PATH]         a running knpd's verdict, per instance
//   knpctl status    [--socket PATH]                            a running knpd: queues, readiness, instances
//   knpctl plugins   --socket PATH                              the pipeline a running knpd runs
//
// Every failure is one line on stderr naming the file, line or field; exit status 1.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include "common/log.hpp"
#include "dataplane/ruleset.hpp"
#include "ops/control_client.hpp"
#include "ops/describe.hpp"
#include "pipeline/config.hpp"
#include "pipeline/pipeline.hpp"
#include "plugins/library.hpp"
#include "sim/simulate.hpp"

using namespace knp::host;
namespace json = boost::json;

namespace {

struct Common {
    std::string pipeline;
    std::vector<std::string> pluginDirs;
    int verbosity = 0;
    std::string output = "text";
    std::string socket;  // explain, status, plugins: ask the running knpd
};

int fail(const Error& e) {
    std::fprintf(stderr, "knpctl: error: %s\n", e.message.c_str());
    return 1;
}

std::string defaultPipelinePath() { return KNP_PIPELINE_PATH; }

Result<std::unique_ptr<Pipeline>> loadPipeline(const Common& c, std::string path) {
    if (path.empty()) path = c.pipeline.empty() ? defaultPipelinePath() : c.pipeline;
    auto cfg = parsePipelineFile(path);
    if (!cfg) return std::move(cfg).error();
    LoadOptions opts;
    opts.searchPath = PluginSearchPath::standard(c.pluginDirs);
    return Pipeline::load(*cfg, opts);
}

void addCommon(CLI::App* app, Common& c, bool pipelineOption) {
    if (pipelineOption)
        app->add_option("--pipeline", c.pipeline, "pipeline.yaml to load (default " + defaultPipelinePath() + ")");
    app->add_option("--plugin-dir", c.pluginDirs,
                    "directory searched first for plugin libraries (repeatable); then KNP_PLUGIN_PATH, the build "
                    "tree when run from it, and " KNP_PLUGINDIR);
}

std::string abiOf(const knp_plugin_descriptor& d) { return fmt::format("{}.{}", d.abi_major, d.abi_minor); }

int cmdPlugins(const Common& c) {
    json::array instances;
    if (!c.socket.empty()) {
        auto r = controlRequest(c.socket, {{"command", "plugins"}});
        if (!r) return fail(r.error());
        if (!r->is_array()) return fail(makeError("{}: knpd sent no instance list", c.socket));
        instances = std::move(r->get_array());
    } else {
        auto p = loadPipeline(c, "");
        if (!p) return fail(p.error());
        for (const auto& i : (*p)->instances()) instances.push_back(describeInstance(*i));
    }
    if (c.output == "json") {
        std::cout << json::serialize(instances) << "\n";
    } else {
        std::cout << formatInstanceTable(instances);
    }
    return 0;
}

int cmdValidate(const Common& c, const std::string& file) {
    std::string path = file.empty() ? (c.pipeline.empty() ? defaultPipelinePath() : c.pipeline) : file;
    auto p = loadPipeline(c, path);
    if (!p) return fail(p.error());
    std::cout << fmt::format("{}: OK ({} instances loaded)\n", path, (*p)->instances().size());
    return 0;
}

int cmdInspect(const Common& c, const std::string& file) {
    auto lib = loadPluginLibrary(file, FileTrustPolicy::forThisProcess());
    if (!lib) return fail(lib.error());
    const auto& d = *(*lib)->descriptor;
    auto s = [](const char* p) { return std::string(p != nullptr ? p : ""); };
    if (c.output == "json") {
        json::object o;
        o["path"] = (*lib)->path;
        o["name"] = s(d.name);
        o["version"] = s(d.version);
        o["description"] = s(d.description);
        o["contact"] = s(d.contact);
        o["license"] = s(d.license);
        o["abi"] = abiOf(d);
        o["capabilities"] = describeCapabilities(d.capabilities);
        if (d.config_schema != nullptr) {
            boost::system::error_code ec;
            json::value schema = json::parse(d.config_schema, ec);
            o["config_schema"] = ec ? json::value(d.config_schema) : schema;
        }
        std::cout << json::serialize(o) << "\n";
        return 0;
    }
    std::cout << fmt::format(
        "path:         {}\nname:         {}\nversion:      {}\ndescription:  {}\ncontact:      {}\nlicense:      "
        "{}\nabi:          {}\ncapabilities: {}\nconfig schema: {}\n",
        (*lib)->path, s(d.name), s(d.version), s(d.description), s(d.contact), s(d.license), abiOf(d),
        describeCapabilities(d.capabilities), d.config_schema != nullptr ? s(d.config_schema) : "(none)");
    return 0;
}

int cmdSimulate(const Common& c, const std::string& stateFile, const std::string& probesFile,
                const std::vector<std::string>& inline_) {
    // Probes are checked before anything is loaded, so a typo costs nothing.
    std::vector<Probe> probes;
    if (!probesFile.empty()) {
        auto ps = loadProbesFile(probesFile);
        if (!ps) return fail(ps.error());
        probes = std::move(*ps);
    }
    for (size_t i = 0; i < inline_.size(); ++i) {
        auto p = parseProbe(inline_[i], fmt::format("--probe #{}", i + 1));
        if (!p) return fail(p.error());
        probes.push_back(std::move(*p));
    }
    if (probes.empty()) return fail(makeError("no probes: give --probes FILE and/or --probe 'SRC DST PROTO/PORT'"));
    auto state = loadStateFile(stateFile);
    if (!state) return fail(state.error());
    auto p = loadPipeline(c, "");
    if (!p) return fail(p.error());
    auto sim = Simulation::create(std::move(*p), *state);
    if (!sim) return fail(sim.error());
    // Resolve every probe first: a bad probe fails the run before any verdict is printed.
    std::vector<std::string> lines;
    for (const Probe& probe : probes) {
        auto line = (*sim)->run(probe);
        if (!line) return fail(line.error());
        lines.push_back(std::move(*line));
    }
    for (const auto& l : lines) std::cout << l << "\n";
    std::cout.flush();
    return std::cout.good() ? 0 : 1;
}

int cmdDataplane(const Common& c) {
    // The same probe knpd runs at start, in this process's network namespace. It commits
    // nothing: the probe batch is always rolled back.
    auto m = detectQueueMethod();
    if (!m) return fail(m.error());
    if (c.output == "json") {
        json::object o;
        o["queue_method"] = *m == QueueMethod::Expression ? "expression" : "compat";
        o["description"] = queueMethodName(*m);
        std::cout << json::serialize(o) << "\n";
    } else {
        std::cout << "queue method: " << queueMethodName(*m) << "\n";
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Against a running knpd (the control socket)
// ---------------------------------------------------------------------------------------------

std::string text(const json::object& o, std::string_view key) {
    const json::value* v = o.if_contains(key);
    if (v == nullptr || v->is_null()) return {};
    return v->is_string() ? std::string(v->get_string()) : json::serialize(*v);
}

uint64_t number(const json::object& o, std::string_view key) {
    const json::value* v = o.if_contains(key);
    if (v == nullptr) return 0;
    if (v->is_uint64()) return v->get_uint64();
    if (v->is_int64()) return v->get_int64() < 0 ? 0 : static_cast<uint64_t>(v->get_int64());
    if (v->is_double()) return static_cast<uint64_t>(v->get_double());
    return 0;
}

const json::object& objectAt(const json::object& o, std::string_view key) {
    static const json::object kEmpty;
    const json::value* v = o.if_contains(key);
    return v != nullptr && v->is_object() ? v->get_object() : kEmpty;
}

const json::array& arrayAt(const json::object& o, std::string_view key) {
    static const json::array kEmpty;
    const json::value* v = o.if_contains(key);
    return v != nullptr && v->is_array() ? v->get_array() : kEmpty;
}

void printDirection(std::string_view name, std::string_view end, const json::object& d) {
    bool here = d.contains("enforced_here") && d.at("enforced_here").is_bool() && d.at("enforced_here").get_bool();
    std::string by = text(d, "instance");
    std::cout << fmt::format("{} ({}, {}): {}{}\n", name, end, here ? "enforced on this node" : "not enforced here",
                             text(d, "verdict"), by.empty() ? "" : " by " + by);
    std::string rule = text(d, "rule");
    std::cout << fmt::format("    {}{}\n", text(d, "reason"), rule.empty() ? "" : " [rule " + rule + "]");
    size_t n = 0;
    for (const json::value& v : arrayAt(d, "trace")) {
        if (!v.is_object()) continue;
        const json::object& t = v.get_object();
        std::string r = text(t, "rule");
        bool decided = t.contains("decided") && t.at("decided") == json::value(true);
        bool reached = !t.contains("reached") || t.at("reached") == json::value(true);
        std::string line = fmt::format("    {:>2}. {:<20} {:<6} {}{}{}", ++n, text(t, "instance"), text(t, "verdict"),
                                       text(t, "reason"), r.empty() ? "" : " [rule " + r + "]",
                                       decided   ? "  <- decided"
                                       : reached ? ""
                                                 : "  (not reached)");
        std::cout << line.substr(0, line.find_last_not_of(' ') + 1) << "\n";
    }
}

int cmdExplain(const Common& c, const std::vector<std::string>& words) {
    std::string probe;
    for (const auto& w : words) probe += (probe.empty() ? "" : " ") + w;
    // Checked here first: a typo gets the same one-line error as simulate, without a round trip.
    if (auto p = parseProbe(probe, "probe"); !p) return fail(p.error());
    auto r = controlRequest(c.socket, {{"command", "explain"}, {"probe", probe}});
    if (!r) return fail(r.error());
    if (c.output == "json" || !r->is_object()) {
        std::cout << json::serialize(*r) << "\n";
        return 0;
    }
    const json::object& o = r->get_object();
    std::cout << fmt::format("{} -> {} {}/{}: {}\n", text(o, "src"), text(o, "dst"), text(o, "protocol"),
                             text(o, "port"), text(o, "verdict"));
    std::cout << fmt::format("    {} -> {} (node {})\n", text(o, "src_ip"), text(o, "dst_ip"), text(o, "node"));
    printDirection("egress", "source", objectAt(o, "egress"));
    printDirection("ingress", "destination", objectAt(o, "ingress"));
    return 0;
}

int cmdStatus(const Common& c) {
    auto r = controlRequest(c.socket, {{"command", "status"}});
    if (!r) return fail(r.error());
    if (c.output == "json" || !r->is_object()) {
        std::cout << json::serialize(*r) << "\n";
        return 0;
    }
    const json::object& o = r->get_object();
    const json::object& dp = objectAt(o, "dataplane");
    std::cout << fmt::format("node:       {} (knpd {}, pid {}, up {}s)\n", text(o, "node"), text(o, "version"),
                             text(o, "pid"), number(o, "uptime_seconds"));
    std::cout << fmt::format("pipeline:   {}\n", text(o, "pipeline"));
    std::cout << fmt::format("ready:      {}\n",
                             o.contains("ready") && o.at("ready") == json::value(true) ? "yes" : "no");
    for (const json::value& v : arrayAt(o, "readiness")) {
        if (!v.is_object()) continue;
        const json::object& ch = v.get_object();
        std::string msg = text(ch, "message");
        std::cout << fmt::format("  [{}] {}{}\n", ch.contains("ok") && ch.at("ok") == json::value(true) ? "+" : "-",
                                 text(ch, "check"), msg.empty() ? "" : ": " + msg);
    }
    std::cout << fmt::format(
        "dataplane:  table {}, queue method {}, {}\n", text(dp, "table"), text(dp, "queue_method"),
        dp.contains("fail_open") && dp.at("fail_open") == json::value(true) ? "fail-open" : "fail-closed");
    constexpr std::string_view kQueueRow = "  {:<6} {:>9} {:>9} {:>9} {:>10} {:>8} {:>9} {:>9} {:>9}\n";
    std::cout << fmt::format(fmt::runtime(kQueueRow), "QUEUE", "PACKETS", "ACCEPTED", "DENIED", "UNPARSABLE", "WAITING",
                             "Q-DROPPED", "U-DROPPED", "LAST-ID");
    for (const json::value& v : arrayAt(dp, "queues")) {
        if (!v.is_object()) continue;
        const json::object& q = v.get_object();
        const json::object& k = objectAt(q, "kernel");
        std::cout << fmt::format(fmt::runtime(kQueueRow), number(q, "queue"), number(q, "packets"),
                                 number(q, "accepted"), number(q, "denied"), number(q, "unparsable"),
                                 number(k, "waiting"), number(k, "queue_dropped"), number(k, "user_dropped"),
                                 number(k, "id_sequence"));
    }
    const json::object& rs = objectAt(dp, "ruleset");
    std::cout << fmt::format("ruleset:    {} transactions ({} full loads), {} failures\n", number(rs, "transactions"),
                             number(rs, "full_loads"), number(rs, "apply_failures"));
    const json::object& cl = objectAt(o, "cluster");
    std::cout << fmt::format("cluster:    {} pods, {} local pod IPs\n", number(cl, "pods"),
                             number(cl, "local_pod_ips"));
    constexpr std::string_view kInstanceRow = "  {:<20} {:<16} {:<9} {:<9} {:>9} {:>9} {:>9} {:>7}\n";
    std::cout << "instances:\n"
              << fmt::format(fmt::runtime(kInstanceRow), "INSTANCE", "PLUGIN", "SNAPSHOT", "DIRECTION", "ACCEPT",
                             "DENY", "NEXT", "ERRORS");
    for (const json::value& v : arrayAt(o, "instances")) {
        if (!v.is_object()) continue;
        const json::object& i = v.get_object();
        std::string snapshot = i.contains("snapshot") ? (i.at("snapshot") == json::value(true) ? "yes" : "no") : "-";
        for (const auto& [dir, counts] : objectAt(i, "evaluations")) {
            if (!counts.is_object()) continue;
            const json::object& e = counts.get_object();
            std::cout << fmt::format(fmt::runtime(kInstanceRow), text(i, "instance"), text(i, "plugin"), snapshot,
                                     std::string_view(dir), number(e, "accept"), number(e, "deny"), number(e, "next"),
                                     number(e, "errors"));
        }
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"knpctl: inspect and exercise knp's policy plugin pipeline"};
    app.require_subcommand(1);
    app.fallthrough();  // global options (-o, -v) also after the subcommand: `knpctl explain … -o json`
    Common c;
    app.add_flag("-v,--v", c.verbosity, "more log output (repeat for more)");
    app.add_option("-o,--output", c.output, "output format")->check(CLI::IsMember({"text", "json"}));

    auto* plugins = app.add_subcommand("plugins", "list the pipeline as loaded: instances, libraries, versions");
    addCommon(plugins, c, true);
    plugins->add_option("--socket", c.socket, "ask the running knpd at this control socket instead of loading FILE");

    std::string validateFile;
    auto* validate = app.add_subcommand("validate", "load a pipeline.yaml and every plugin config; exit 1 on error");
    validate->add_option("FILE", validateFile, "pipeline.yaml (default " + defaultPipelinePath() + ")");
    addCommon(validate, c, false);

    std::string inspectFile;
    auto* inspect = app.add_subcommand("inspect", "print a plugin library's descriptor");
    inspect->add_option("FILE", inspectFile, "plugin .so")->required();

    std::string stateFile, probesFile;
    std::vector<std::string> probes;
    auto* simulate = app.add_subcommand("simulate", "evaluate probes against a cluster state through the pipeline");
    simulate->add_option("--state", stateFile, "cluster state: multi-document YAML or a kind: List")->required();
    simulate->add_option("--probes", probesFile, "file of probes, one 'SRC DST PROTO/PORT' per line");
    simulate->add_option("--probe", probes, "a probe 'SRC DST PROTO/PORT' (repeatable)");
    addCommon(simulate, c, true);

    auto* dataplane = app.add_subcommand("dataplane", "probe what this kernel offers knpd (root; commits nothing)");

    std::vector<std::string> explainProbe;
    auto* explain = app.add_subcommand(
        "explain", "ask the running knpd how it judges a connection: each direction, each instance in pipeline order");
    explain->add_option("PROBE", explainProbe, "SRC DST PROTO/PORT (SRC/DST: namespace/pod or an IP)")
        ->required()
        ->expected(1, 3);
    auto* status = app.add_subcommand("status", "the running knpd: node, queues and counters, readiness, instances");
    std::string agentSocket = kDefaultControlSocket;
    for (auto* sub : {explain, status})
        sub->add_option("--socket", agentSocket, "knpd's control socket")->capture_default_str();

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    // knpctl prints results on stdout; its own and the plugins' logs stay quiet unless asked for.
    setLogThreshold(static_cast<LogLevel>(std::min(1 + c.verbosity, 4)));

    if (plugins->parsed()) return cmdPlugins(c);
    if (validate->parsed()) return cmdValidate(c, validateFile);
    if (inspect->parsed()) return cmdInspect(c, inspectFile);
    if (simulate->parsed()) return cmdSimulate(c, stateFile, probesFile, probes);
    if (dataplane->parsed()) return cmdDataplane(c);
    if (explain->parsed() || status->parsed()) c.socket = agentSocket;
    if (explain->parsed()) return cmdExplain(c, explainProbe);
    if (status->parsed()) return cmdStatus(c);
    return 2;
}
