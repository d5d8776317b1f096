// qemu::list_vms, and manager::query_now (which it calls for each VM).
#include "manager_impl.hpp"
#include "watch.hpp"

#include <localvm/qemu/list.hpp>

#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <set>

namespace localvm::qemu {
namespace asio = boost::asio;
namespace fs = std::filesystem;

status manager::query_now() {
    impl& vm = *impl_;
    status st;
    st.exists = fs::exists(vm.files.disk);
    st.pid = detail::lock_owner(vm.files.pidfile);
    st.running = st.pid.has_value();
    st.state = vm.settle_state(state_record::in_memory);
    // As attach_monitor judges it: QEMU keeps the socket while it lives.
    st.monitor = st.running && fs::exists(vm.files.monitor_socket);
    return st;
}

namespace {

// The work, outside the coroutine frame (GCC 12 warns falsely about string
// assignments in one, and nothing here suspends).
std::vector<vm_listing> list_in(options defaults, const asio::any_io_executor& ex) {
    std::set<std::string> names;
    for (const auto& top : {data_root(defaults.data_dir), runtime_root(defaults.runtime_dir)}) {
        std::error_code ec;
        for (fs::directory_iterator it(top, ec), end; !ec && it != end; it.increment(ec)) {
            std::error_code tec;
            auto name = it->path().filename().string();
            // Directories only, not links; a runtime directory also holds
            // the "kvm-hangs" marker, which is a file.
            if (it->symlink_status(tec).type() == fs::file_type::directory &&
                check_name(name).empty())
                names.insert(name);
        }
    }
    std::vector<vm_listing> out;
    out.reserve(names.size());
    for (const auto& name : names) {
        auto o = defaults;
        o.name = name;
        manager m(ex, o);
        out.push_back(vm_listing{name, m.query_now(), m.files()});
    }
    return out;
}

} // namespace

asio::awaitable<std::vector<vm_listing>> list_vms(options defaults) {
    auto ex = co_await asio::this_coro::executor;
    co_return list_in(std::move(defaults), ex);
}

} // namespace localvm::qemu
