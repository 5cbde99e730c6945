// knpctl: inspect and exercise the plugin pipeline without a cluster.
//
//   knpctl plugins   [--pipeline FILE] [--plugin-dir DIR]...   the pipeline as loaded
//   knpctl validate  [FILE]                                     check a pipeline.yaml fully
//   knpctl inspect   FILE.so                                    a plugin's descriptor
//   knpctl simulate  --state STATE [--pipeline FILE] [--probes FILE] [--probe 'SRC DST PROTO/PORT']...
//   knpctl dataplane                                            what this kernel offers knpd
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
    auto p = loadPipeline(c, "");
    if (!p) return fail(p.error());
    const auto& instances = (*p)->instances();
    if (c.output == "json") {
        json::array arr;
        for (const auto& i : instances) {
            const auto& d = i->descriptor();
            json::object o;
            o["instance"] = i->name();
            o["plugin"] = d.name;
            o["library"] = i->library().path;
            o["version"] = d.version;
            o["abi"] = abiOf(d);
            o["capabilities"] = describeCapabilities(d.capabilities);
            o["onError"] = onErrorName(i->onError());
            json::array ws;
            for (const auto& w : i->watches()) ws.push_back(json::value(w.describe()));
            o["watches"] = std::move(ws);
            arr.push_back(std::move(o));
        }
        std::cout << json::serialize(arr) << "\n";
        return 0;
    }
    std::cout << fmt::format("{:<20} {:<16} {:<10} {:<5} {:<15} {:<8} {}\n", "INSTANCE", "PLUGIN", "VERSION", "ABI",
                             "CAPABILITIES", "ONERROR", "LIBRARY");
    for (const auto& i : instances) {
        const auto& d = i->descriptor();
        std::cout << fmt::format("{:<20} {:<16} {:<10} {:<5} {:<15} {:<8} {}\n", i->name(), d.name, d.version, abiOf(d),
                                 describeCapabilities(d.capabilities), onErrorName(i->onError()), i->library().path);
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

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"knpctl: inspect and exercise knp's policy plugin pipeline"};
    app.require_subcommand(1);
    Common c;
    app.add_flag("-v,--v", c.verbosity, "more log output (repeat for more)");
    app.add_option("-o,--output", c.output, "output format")->check(CLI::IsMember({"text", "json"}));

    auto* plugins = app.add_subcommand("plugins", "list the pipeline as loaded: instances, libraries, versions");
    addCommon(plugins, c, true);

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
    return 2;
}
