#include "corio/debug.hpp"

#include <cxxabi.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <iostream>
#include <sstream>
#include <typeinfo>

#include "corio/task.hpp"

namespace corio {

namespace detail {

TaskInfo describe_task(const TaskBase& t) {
    TaskInfo info;
    info.id = t.id();
    info.name = t.name();
    EventLoop* loop = t.loop();
    info.state = (loop && loop->current_task() == &t) ? "running" : "pending";
    info.created_file = t.created_at().file_name();
    info.created_line = t.created_at().line();
    info.cancelling = t.cancelling();
    for (const PromiseBase* p = t.root_promise(); p; p = p->awaiting)
        info.frames.push_back({p->location.function_name(), p->location.file_name(), p->location.line()});
    if (const WaitNode* w = t.waiting_on()) {
        const char* raw = typeid(*w).name();
        int status = 0;
        std::unique_ptr<char, void (*)(void*)> readable(abi::__cxa_demangle(raw, nullptr, nullptr, &status), &std::free);
        info.awaiting = (status == 0 && readable) ? readable.get() : raw;
    }
    return info;
}

void report_slow_step(const TaskBase& t, std::chrono::nanoseconds took) noexcept {
    EventLoop* loop = t.loop();
    if (!loop) return;
    try {
        char secs[32];
        std::snprintf(secs, sizeof secs, "%.3f", std::chrono::duration<double>(took).count());
        ExceptionContext c;
        c.message = "Executing <Task " + t.name() + "> took " + secs +
                    " seconds: something blocked the event loop (use corio::to_thread for blocking calls)";
        c.task_name = t.name();
        c.location = t.created_at();
        c.call_graph = format_call_graph(t);
        loop->call_exception_handler(c);
    } catch (...) {
    }
}

}  // namespace detail

std::string format_call_graph(const detail::TaskBase& task) {
    TaskInfo info = detail::describe_task(task);
    std::ostringstream out;
    out << "  * Task " << info.name << " (" << info.state << ", created at " << info.created_file << ":"
        << info.created_line << ")";
    for (const auto& f : info.frames) out << "\n    | " << f.function << "  " << f.file << ":" << f.line;
    if (!info.awaiting.empty()) out << "\n    | awaiting " << info.awaiting;
    return out.str();
}

std::vector<TaskInfo> capture_call_graph() {
    std::vector<TaskInfo> out;
    get_running_loop().tasks().for_each([&](detail::TaskBase& t) { out.push_back(detail::describe_task(t)); });
    return out;
}

void print_call_graph(std::ostream& out) {
    get_running_loop().tasks().for_each([&](detail::TaskBase& t) { out << format_call_graph(t) << "\n"; });
}

void print_call_graph() { print_call_graph(std::cerr); }

}  // namespace corio
