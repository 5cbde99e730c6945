// Shared fixtures for the host tests: test-plugin paths, temp dirs, pipelines from text.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include "pipeline/config.hpp"
#include "pipeline/pipeline.hpp"

namespace knp::host::test {

inline std::string testPlugin(const std::string& name) { return std::string(KNP_TEST_PLUGIN_DIR) + "/" + name + ".so"; }

// A directory removed when the test ends.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "knp-test-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string write(const std::string& name, const std::string& text) const {
        auto p = path / name;
        std::ofstream(p) << text;
        return p.string();
    }
};

// Loader options that find the test plugins and the plugins built in this tree.
inline LoadOptions testLoadOptions() {
    LoadOptions o;
    o.searchPath.dirs = {KNP_TEST_PLUGIN_DIR, KNP_BUILD_PLUGINDIR};
    o.trust.enforce = false;
    return o;
}

inline std::string pipelineYaml(const std::string& instances) {
    return "apiVersion: knp.dev/v1alpha1\nkind: Pipeline\ninstances:\n" + instances;
}

inline Result<std::unique_ptr<Pipeline>> loadPipelineText(const std::string& instances) {
    auto cfg = parsePipelineText(pipelineYaml(instances), "pipeline.yaml", "");
    if (!cfg) return std::move(cfg).error();
    return Pipeline::load(*cfg, testLoadOptions());
}

}  // namespace knp::host::test
