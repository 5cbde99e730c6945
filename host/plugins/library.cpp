#include "plugins/library.hpp"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include <boost/dll/shared_library.hpp>

namespace knp::host {

namespace fs = std::filesystem;

PluginSearchPath PluginSearchPath::standard(const std::vector<std::string>& cliDirs) {
    PluginSearchPath p;
    p.dirs = cliDirs;
    if (const char* env = std::getenv("KNP_PLUGIN_PATH"); env != nullptr) {
        std::string_view rest(env);
        while (!rest.empty()) {
            size_t colon = rest.find(':');
            std::string_view dir = rest.substr(0, colon);
            if (!dir.empty()) p.dirs.emplace_back(dir);
            rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
        }
    }
    // Run from the build tree (build/host/knpctl, build/tests/...), the plugins just built are
    // found without an install step. An installed binary never lives under the build root.
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    std::string buildRoot = KNP_BUILD_ROOT;
    if (!ec && exe.string().rfind(buildRoot + "/", 0) == 0) p.dirs.emplace_back(KNP_BUILD_PLUGINDIR);
    p.dirs.emplace_back(KNP_PLUGINDIR);
    return p;
}

std::string PluginSearchPath::describe() const {
    std::string s;
    for (const auto& d : dirs) {
        if (!s.empty()) s += ':';
        s += d;
    }
    return s;
}

Result<std::string> resolveLibrary(std::string_view library, const PluginSearchPath& path, const std::string& baseDir) {
    if (library.empty()) return makeError("empty library name");
    std::error_code ec;
    if (library.find('/') != std::string_view::npos) {
        fs::path p(library);
        if (p.is_relative() && !baseDir.empty()) p = fs::path(baseDir) / p;
        if (!fs::is_regular_file(p, ec)) return makeError("{}: no such plugin file", p.string());
        return p.string();
    }
    for (const auto& dir : path.dirs) {
        for (std::string name : {std::string(library), std::string(library) + ".so"}) {
            fs::path p = fs::path(dir) / name;
            if (fs::is_regular_file(p, ec)) return p.string();
        }
    }
    return makeError("plugin {:?} not found (looked for {}.so in {})", library, library, path.describe());
}

FileTrustPolicy FileTrustPolicy::forThisProcess() {
    FileTrustPolicy p;
    p.enforce = ::geteuid() == 0;
    p.trustedUid = 0;
    return p;
}

Status checkFileTrust(const std::string& path, const FileTrustPolicy& policy) {
    if (!policy.enforce) return okStatus();
    std::error_code ec;
    fs::path real = fs::canonical(path, ec);
    if (ec) return makeError("{}: {}", path, ec.message());
    auto check = [&](const fs::path& p, bool strict) -> Status {
        struct stat st {};
        if (::stat(p.c_str(), &st) != 0) return makeError("{}: {}", p.string(), std::strerror(errno));
        if (st.st_uid != 0 && st.st_uid != policy.trustedUid)
            return makeError("{} is owned by uid {}, not root: refusing to load plugins from it", p.string(),
                             st.st_uid);
        bool sticky = (st.st_mode & S_ISVTX) != 0;
        if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (strict || !sticky))
            return makeError("{} is writable by group or others (mode {:o}): refusing to load plugins from it",
                             p.string(), st.st_mode & 07777);
        return okStatus();
    };
    if (auto s = check(real, true); !s) return s;
    if (auto s = check(real.parent_path(), true); !s) return s;
    for (fs::path p = real.parent_path(); p.has_relative_path(); p = p.parent_path()) {
        if (auto s = check(p.parent_path(), false); !s) return s;
    }
    return okStatus();
}

std::string describeCapabilities(uint64_t caps) {
    std::string s;
    auto add = [&](const char* n) { s += s.empty() ? n : std::string(",") + n; };
    if (caps & KNP_CAP_INGRESS) add("ingress");
    if (caps & KNP_CAP_EGRESS) add("egress");
    return s.empty() ? "none" : s;
}

Status validateDescriptor(const knp_plugin_descriptor* d) {
    if (d == nullptr) return makeError("entry point returned no descriptor");
    // struct_size, abi_major and abi_minor lead the descriptor in every major.
    constexpr size_t kVersionEnd = offsetof(knp_plugin_descriptor, abi_minor) + sizeof(uint32_t);
    if (d->struct_size < kVersionEnd) return makeError("descriptor struct_size {} is too small", d->struct_size);
    if (d->abi_major != KNP_ABI_MAJOR)
        return makeError("built for plugin ABI {}.{}, this host speaks ABI {}.{} (major mismatch)", d->abi_major,
                         d->abi_minor, KNP_ABI_MAJOR, KNP_ABI_MINOR);
    if (d->abi_minor > KNP_ABI_MINOR)
        return makeError("built for plugin ABI {}.{}, newer than this host's {}.{}: upgrade knp", d->abi_major,
                         d->abi_minor, KNP_ABI_MAJOR, KNP_ABI_MINOR);
    // Every 1.x descriptor has at least the 1.0 members.
    constexpr size_t kV10Size = offsetof(knp_plugin_descriptor, evaluate_egress) + sizeof(void*);
    if (d->struct_size < kV10Size)
        return makeError("descriptor struct_size {} is smaller than ABI {}.0 requires ({})", d->struct_size,
                         KNP_ABI_MAJOR, kV10Size);
    if (d->name == nullptr || d->name[0] == '\0') return makeError("descriptor has no name");
    if (d->version == nullptr) return makeError("descriptor has no version");
    constexpr uint64_t kKnownCaps = KNP_CAP_INGRESS | KNP_CAP_EGRESS;
    if ((d->capabilities & ~kKnownCaps) != 0)
        return makeError("unknown capability bits {:#x}", d->capabilities & ~kKnownCaps);
    if ((d->capabilities & kKnownCaps) == 0) return makeError("declares neither ingress nor egress capability");
    struct Required {
        const void* fn;
        const char* name;
    };
    const Required required[] = {
        {reinterpret_cast<const void*>(d->init), "init"},
        {reinterpret_cast<const void*>(d->destroy), "destroy"},
        {reinterpret_cast<const void*>(d->update), "update"},
        {reinterpret_cast<const void*>(d->release_snapshot), "release_snapshot"},
    };
    for (const auto& r : required)
        if (r.fn == nullptr) return makeError("descriptor function {} is NULL", r.name);
    if ((d->capabilities & KNP_CAP_INGRESS) && d->evaluate_ingress == nullptr)
        return makeError("declares the ingress capability but evaluate_ingress is NULL");
    if ((d->capabilities & KNP_CAP_EGRESS) && d->evaluate_egress == nullptr)
        return makeError("declares the egress capability but evaluate_egress is NULL");
    return okStatus();
}

namespace {

// Loaded libraries by canonical path. Intentionally leaked: plugins are never unloaded.
std::map<std::string, std::unique_ptr<PluginLibrary>>& registry() {
    static auto* r = new std::map<std::string, std::unique_ptr<PluginLibrary>>();
    return *r;
}

std::vector<boost::dll::shared_library>& handles() {
    static auto* h = new std::vector<boost::dll::shared_library>();
    return *h;
}

}  // namespace

Result<const PluginLibrary*> loadPluginLibrary(const std::string& path, const FileTrustPolicy& policy) {
    std::error_code fec;
    fs::path real = fs::canonical(path, fec);
    if (fec) return makeError("{}: {}", path, fec.message());
    if (auto it = registry().find(real.string()); it != registry().end()) return it->second.get();
    if (auto s = checkFileTrust(real.string(), policy); !s) return std::move(s).error();

    // RTLD_NOW: fail here on unresolved symbols, not on a data thread later. RTLD_LOCAL: a
    // plugin's symbols never satisfy another plugin's. RTLD_NODELETE: never unloaded.
    auto mode = static_cast<boost::dll::load_mode::type>(RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    boost::dll::fs::error_code ec;
    ::dlerror();
    boost::dll::shared_library lib(real.string(), ec, mode);
    if (ec || !lib.is_loaded()) {
        const char* why = ::dlerror();
        return makeError("{}: cannot load: {}", path, why != nullptr ? why : ec.message());
    }
    if (!lib.has(KNP_PLUGIN_ENTRY_SYMBOL))
        return makeError("{}: no entry symbol {} (not a knp plugin, or built for another ABI major)", path,
                         KNP_PLUGIN_ENTRY_SYMBOL);
    auto entry = lib.get<const knp_plugin_descriptor*()>(KNP_PLUGIN_ENTRY_SYMBOL);
    const knp_plugin_descriptor* d = nullptr;
    try {
        d = entry();
    } catch (...) {
        return makeError("{}: entry point threw an exception", path);
    }
    if (auto s = validateDescriptor(d); !s) return std::move(s).error().withContext(path + ": ");

    auto out = std::make_unique<PluginLibrary>();
    out->path = real.string();
    out->descriptor = d;
    const PluginLibrary* raw = out.get();
    handles().push_back(std::move(lib));
    registry().emplace(real.string(), std::move(out));
    return raw;
}

}  // namespace knp::host
