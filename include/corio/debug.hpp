// Introspection: the await chain of every task (asyncio.print_call_graph / capture_call_graph).
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <typeinfo>
#include <vector>

namespace corio {

namespace detail {
class TaskBase;
}

struct FrameInfo {
    std::string function;
    std::string file;
    std::uint32_t line = 0;
};

struct TaskInfo {
    std::uint64_t id = 0;
    std::string name;
    std::string state;           // "pending" or "running"
    std::string created_file;
    std::uint32_t created_line = 0;
    std::vector<FrameInfo> frames;  // outermost coroutine first
    std::string awaiting;           // what the innermost frame waits on, when known
    std::vector<std::uint64_t> awaits;  // ids of the tasks it waits for
    int cancelling = 0;
    double age_s = -1;   // -1: the loop keeps no statistics (debug mode or introspection)
    double busy_s = -1;  // time its steps held the loop
    std::uint64_t steps = 0;
};

// Every pending task of the running loop with its await chain.
std::vector<TaskInfo> capture_call_graph();
// The same, printed (to std::cerr unless told otherwise).
void print_call_graph();
void print_call_graph(std::ostream& out);

// The await chain of one task, as text (used in diagnostics).
std::string format_call_graph(const detail::TaskBase& task);

// What `corio-ps` shows for the running loop: a table of tasks, a tree of who awaits whom
// (flagging tasks that await each other in a cycle), or the same data as JSON.
std::string format_task_table();
std::string format_task_tree();
std::string format_task_json();

// Cycles of tasks awaiting each other, each as the ids along the cycle.
std::vector<std::vector<std::uint64_t>> find_await_cycles(const std::vector<TaskInfo>& tasks);

// Live introspection (python -m asyncio ps / pstree): the running loop answers on a Unix socket
// at introspection_socket_path(getpid()) — `corio-ps PID` asks it. corio::run turns it on when
// RunOptions::introspect is set or CORIO_INTROSPECT is in the environment.
void enable_introspection();
std::string introspection_socket_path(long pid);

class EventLoop;

namespace detail {
void enable_introspection(EventLoop& loop);
TaskInfo describe_task(const TaskBase& task);
void report_slow_step(const TaskBase& task, std::chrono::nanoseconds took) noexcept;
// `what`: the callback's type, when known (a demangled lambda type names where it was written).
void report_slow_callback(EventLoop& loop, std::chrono::nanoseconds took, const std::type_info* what) noexcept;
}  // namespace detail

}  // namespace corio
