#include "corio/subprocess.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "corio/detail/affinity.hpp"
#include "corio/detail/io_awaiter.hpp"
#include "corio/detail/task_set_waiter.hpp"
#include "corio/loop.hpp"
#include "corio/sleep.hpp"
#include "corio/socket.hpp"
#include "corio/task.hpp"

extern char** environ;

namespace corio {

namespace detail {

namespace {

[[noreturn]] void throw_errno(int e, const std::string& what) { throw std::system_error(e, std::generic_category(), what); }

int pidfd_open(pid_t pid) { return int(::syscall(SYS_pidfd_open, pid, 0)); }
int pidfd_send_signal(int pidfd, int sig) { return int(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0)); }

// The program as posix_spawn must be given it: a name without a slash is looked up on the PATH
// of the child's environment when one is given (as Popen does), else on the parent's.
std::string find_program(const std::string& name, const std::optional<std::vector<std::string>>& env,
                         const std::optional<std::string>& cwd) {
    if (!env || name.empty() || name.find('/') != std::string::npos) return name;
    std::string path = "/bin:/usr/bin";  // confstr(_CS_PATH)'s answer, when env has no PATH
    for (const auto& e : *env)
        if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
    std::size_t start = 0;
    for (;;) {
        std::size_t end = path.find(':', start);
        std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
        // The child runs it after its chdir: a relative entry is relative to the child's cwd.
        std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
        std::string seen_from_here = cwd && candidate[0] != '/' ? *cwd + "/" + candidate : candidate;
        struct stat st {};
        if (::stat(seen_from_here.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(seen_from_here.c_str(), X_OK) == 0)
            return candidate;
        if (end == std::string::npos) break;
        start = end + 1;
    }
    throw_errno(ENOENT, "cannot run '" + name + "'" + (cwd ? " in '" + *cwd + "'" : std::string()) +
                            " (not found on the PATH of the given env)");
}

// Both ends close-on-exec; the parent's end non-blocking. The child's end is numbered 3 or more:
// a parent with 0, 1 or 2 closed (a daemon) gets those numbers from pipe2, and the file actions
// that set up the child's 0, 1 and 2 would replace one before it is dup'ed where it belongs
// (.out = DEVNULL over the stderr pipe's end at 1), as Popen avoids too.
struct Pipe {
    int parent = -1;
    int child = -1;
    static Pipe make(bool parent_reads) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) < 0) throw_errno(errno, "pipe2");
        Pipe p;
        p.parent = parent_reads ? fds[0] : fds[1];
        p.child = parent_reads ? fds[1] : fds[0];
        if (p.child < 3) {
            int moved = ::fcntl(p.child, F_DUPFD_CLOEXEC, 3);
            int error = errno;
            ::close(p.child);
            if (moved < 0) {
                ::close(p.parent);
                throw_errno(error, "fcntl(F_DUPFD_CLOEXEC)");
            }
            p.child = moved;
        }
        ::fcntl(p.parent, F_SETFL, ::fcntl(p.parent, F_GETFL) | O_NONBLOCK);
        return p;
    }
};

struct FdGuard {
    std::vector<int> fds;
    ~FdGuard() {
        for (int fd : fds)
            if (fd >= 0) ::close(fd);
    }
};

}  // namespace

struct ProcessState {
    pid_t pid = -1;
    int pidfd = -1;
    // Copies of a Process may wait on several loops' threads at once: one reaps, under the
    // lock, and the others read its code (two waitpid() calls would leave the loser ECHILD,
    // taken for "reaped elsewhere", 255).
    std::mutex reaping;
    std::optional<int> code;
    StreamWriter in;
    StreamReader out;
    StreamReader err;
    EventLoop* loop = nullptr;

    ~ProcessState() {
        if (pidfd >= 0) {
            close_fd_on(loop, pidfd);
        }
        if (pid > 0 && !try_reap()) {
            // asyncio's ResourceWarning ("unclosed transport"), shown in its debug mode: the
            // program lost track of a child it started. Only from the spawner's loop, the one
            // place where the loop is known to be alive.
            if (loop != nullptr && running_loop() == loop && loop->get_debug()) {
                try {
                    loop->call_exception_handler({"a Process was dropped while its child (pid " + std::to_string(pid) +
                                                      ") is still running: kill() it and wait() first, or wait() for it",
                                                  {}, {}, {}, {}});
                } catch (...) {  // no memory for the message: the reaper below matters more
                }
            }
            // Still running and nobody will wait for it: a thread does, so it never lingers as
            // a zombie. By pid, not through a copy of the pidfd, which would stay open until the
            // child ends (a test harness would count it as leaked): a child that the
            // application reaps meanwhile, and whose pid goes to another child of ours, is
            // the one case this can get wrong.
            pid_t p = pid;
            try {
                std::thread([p] {
                    int status;
                    while (::waitpid(p, &status, 0) < 0 && errno == EINTR) {
                    }
                }).detach();
            } catch (...) {
                // No thread to be had: the child stays a zombie until this process ends, which
                // beats ending the process from a destructor.
            }
        }
    }

    std::optional<int> returncode() {
        std::lock_guard lock(reaping);
        return code;
    }

    bool try_reap() noexcept {
        std::lock_guard lock(reaping);
        if (code) return true;
        int status = 0;
        pid_t r;
        do {
            r = ::waitpid(pid, &status, WNOHANG);
        } while (r < 0 && errno == EINTR);
        if (r == 0) return false;
        if (r < 0) {
            // ECHILD: reaped elsewhere (SIGCHLD ignored, a waitpid(-1) of the application's):
            // asyncio reports 255 then, which no signal number can be mistaken for.
            code = 255;
            return true;
        }
        if (WIFEXITED(status))
            code = WEXITSTATUS(status);
        else if (WIFSIGNALED(status))
            code = -WTERMSIG(status);
        else
            return false;
        return true;
    }
};

namespace {

Coro<Process> spawn_process(std::vector<std::string> argv, SubprocessOptions options) {
    if (argv.empty()) throw std::invalid_argument("create_subprocess_exec: empty argv");
    if (options.limit == 0) throw std::invalid_argument("create_subprocess_exec: the stream limit must be positive");
    // Popen's "embedded null byte": as a C string it would end at the NUL, and run something
    // other than what was asked.
    auto refuse_nul = [](const std::string& s, const char* where) {
        if (s.find('\0') != std::string::npos)
            throw std::invalid_argument(std::string("create_subprocess_exec: embedded null byte in ") + where);
    };
    for (const auto& a : argv) refuse_nul(a, "the arguments");
    if (options.env)
        for (const auto& e : *options.env) refuse_nul(e, "env");
    if (options.cwd) refuse_nul(*options.cwd, "cwd");
    EventLoop& loop = get_running_loop();
    FdGuard child_ends;
    FdGuard parent_ends;
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    struct ActionsGuard {
        posix_spawn_file_actions_t* a;
        ~ActionsGuard() { ::posix_spawn_file_actions_destroy(a); }
    } actions_guard{&actions};

    // A file action that cannot be recorded (ENOMEM) would run the child with the wrong files.
    auto check = [](int error, const char* what) {
        if (error) throw std::system_error(error, std::generic_category(), what);
    };
    int parent_fd[3] = {-1, -1, -1};
    Redirect modes[3] = {options.in, options.out, options.err};
    for (int target = 0; target < 3; ++target) {
        switch (modes[target]) {
            case Redirect::Inherit: break;
            case Redirect::Pipe: {
                Pipe p = Pipe::make(target != 0);
                child_ends.fds.push_back(p.child);
                parent_ends.fds.push_back(p.parent);
                parent_fd[target] = p.parent;
                check(::posix_spawn_file_actions_adddup2(&actions, p.child, target), "posix_spawn_file_actions_adddup2");
                break;
            }
            case Redirect::DevNull:
                check(::posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0),
                      "posix_spawn_file_actions_addopen");
                break;
            case Redirect::Stdout:
                if (target != 2) throw std::invalid_argument("corio::STDOUT is only for .err");
                check(::posix_spawn_file_actions_adddup2(&actions, 1, 2), "posix_spawn_file_actions_adddup2");
                break;
        }
    }
    if (options.cwd) check(::posix_spawn_file_actions_addchdir_np(&actions, options.cwd->c_str()), "posix_spawn_file_actions_addchdir_np");
    // Popen's close_fds=True: the child gets 0, 1 and 2 only, even from an fd the application
    // opened without O_CLOEXEC, and the pass_fds, made inheritable (a dup2 onto itself clears
    // FD_CLOEXEC in posix_spawn). The numbers between them are closed one by one (a close of
    // one that is not open is ignored), the rest at once.
    std::vector<int> kept = options.pass_fds;
    std::sort(kept.begin(), kept.end());
    kept.erase(std::unique(kept.begin(), kept.end()), kept.end());
    int next_to_close = 3;
    for (int fd : kept) {
        if (fd < 0) throw std::invalid_argument("create_subprocess_exec: a negative fd in pass_fds");
        if (fd < 3) continue;  // the standard ones are always kept
        // The spawn would fail with EBADF too, but name the program as what could not be run.
        if (::fcntl(fd, F_GETFD) < 0)
            throw_errno(errno, "create_subprocess_exec: pass_fds holds fd " + std::to_string(fd) + ", which is not open");
        for (; next_to_close < fd; ++next_to_close)
            check(::posix_spawn_file_actions_addclose(&actions, next_to_close), "pass_fds: posix_spawn_file_actions_addclose");
        check(::posix_spawn_file_actions_adddup2(&actions, fd, fd), "pass_fds: posix_spawn_file_actions_adddup2");
        next_to_close = fd + 1;
    }
    // EBADF: the last fd kept is the highest the process may have, so nothing is above it.
    if (int error = ::posix_spawn_file_actions_addclosefrom_np(&actions, next_to_close); error != EBADF)
        check(error, "posix_spawn_file_actions_addclosefrom_np");

    posix_spawnattr_t attr;
    ::posix_spawnattr_init(&attr);
    struct AttrGuard {
        posix_spawnattr_t* a;
        ~AttrGuard() { ::posix_spawnattr_destroy(a); }
    } attr_guard{&attr};
    // As Popen's restore_signals: SIGPIPE and SIGXFSZ, which a runtime ignores for itself, are
    // back to their defaults in the child; any other ignored signal stays ignored (nohup, a
    // `trap '' HUP` must still protect children), and handled ones are reset by exec anyway.
    // The mask is emptied, since the spawning thread may be one that blocks signals.
    sigset_t reset, none;
    ::sigemptyset(&reset);
    ::sigaddset(&reset, SIGPIPE);
    ::sigaddset(&reset, SIGXFSZ);
    ::sigemptyset(&none);
    ::posix_spawnattr_setsigdefault(&attr, &reset);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    std::vector<char*> envp;
    if (options.env) {
        for (auto& e : *options.env) envp.push_back(e.data());
        envp.push_back(nullptr);
    }
    std::string program = find_program(argv[0], options.env, options.cwd);
    pid_t pid = -1;
    int rc;
    {
        detail::UnpinnedWhile unpinned;  // a pinned loop's child gets the CPUs the loop had before
        rc = ::posix_spawnp(&pid, program.c_str(), &actions, &attr, args.data(), options.env ? envp.data() : environ);
    }
    if (rc != 0) {
        std::string what = "cannot run '" + argv[0] + "'";
        if (options.cwd) what += " in '" + *options.cwd + "'";  // the directory may be what is missing
        throw_errno(rc, what);
    }

    // Nobody could signal or reap a child we fail to take charge of: it is killed and reaped
    // before the error propagates (asyncio closes the transport, which kills the child).
    // Through its pidfd when there is one: with SIGCHLD ignored or an application's
    // waitpid(-1), the child may be reaped already and its pid another process's. Without one
    // (no fd to spare for it), by pid, the only way left.
    struct Unclaimed {  // no allocation: nothing here can throw
        pid_t pid;
        int pidfd = -1;
        ~Unclaimed() {
            if (pidfd >= 0) {
                pidfd_send_signal(pidfd, SIGKILL);
                siginfo_t info;
                int r;
                while ((r = ::waitid(idtype_t(P_PIDFD), id_t(pidfd), &info, WEXITED)) < 0 && errno == EINTR) {
                }
                const int error = r == 0 ? 0 : errno;
                ::close(pidfd);
                if (r == 0 || error == ECHILD) return;  // else a kernel without P_PIDFD waits
            } else if (pid > 0) {
                ::kill(pid, SIGKILL);
            }
            int status;
            while (pid > 0 && ::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
        }
    } unclaimed{pid};
    // A child reaped elsewhere before we could open its pidfd (a fast child; SIGCHLD ignored or
    // an application's waitpid(-1)): it ran, its pipes hold its output, and its code is lost,
    // which asyncio reports as 255. A pidfd opened on a pid already reused names a stranger,
    // which waitid() refuses as not our child (ECHILD): the same. Any other answer (a kernel
    // without P_PIDFD) leaves the child ours, as it is.
    std::optional<int> reaped_elsewhere;
    const int pidfd = pidfd_open(pid);
    if (pidfd < 0) {
        const int error = errno;
        if (error != ESRCH) throw_errno(error, "pidfd_open");
        unclaimed.pid = -1;
        reaped_elsewhere = 255;
    } else {
        ::fcntl(pidfd, F_SETFD, FD_CLOEXEC);
        siginfo_t info{};
        int r;
        while ((r = ::waitid(idtype_t(P_PIDFD), id_t(pidfd), &info, WEXITED | WNOHANG | WNOWAIT)) < 0 && errno == EINTR) {
        }
        if (r < 0 && errno == ECHILD) {
            ::close(pidfd);
            unclaimed.pid = -1;
            reaped_elsewhere = 255;
        } else {
            unclaimed.pidfd = pidfd;
        }
    }
    // Each pipe end passes to its transport (which closes it even if it fails to be made).
    std::shared_ptr<StreamTransport> transports[3];
    for (int i = 0; i < 3; ++i) {
        if (parent_fd[i] < 0) continue;
        std::erase(parent_ends.fds, parent_fd[i]);
        transports[i] = make_fd_transport(parent_fd[i], false, options.limit);
    }
    auto state = std::make_shared<ProcessState>();
    if (transports[0]) state->in = StreamWriter(transports[0]);
    if (transports[1]) state->out = StreamReader(transports[1]);
    if (transports[2]) state->err = StreamReader(transports[2]);
    state->pid = pid;
    state->loop = &loop;
    state->code = reaped_elsewhere;
    state->pidfd = std::exchange(unclaimed.pidfd, -1);  // the state has the child now
    unclaimed.pid = -1;
    co_return Process(std::move(state));
}

// A wait on another loop than the spawner's polls a copy of the pidfd, closed through that loop
// when the wait ends: the pidfd itself stays registered with the spawner's loop alone, which
// forgets it as the process goes (registered with a loop that nothing tells, its number would
// stay registered there, and a later file with that number would never be woken on epoll).
constexpr auto kReapRetryDelay = std::chrono::milliseconds(10);

class ForeignPidfd {
public:
    explicit ForeignPidfd(int pidfd) noexcept : fd_(::fcntl(pidfd, F_DUPFD_CLOEXEC, 3)), loop_(running_loop()) {}
    ForeignPidfd(const ForeignPidfd&) = delete;
    ForeignPidfd& operator=(const ForeignPidfd&) = delete;
    ~ForeignPidfd() {
        if (fd_ >= 0) close_fd_on(loop_, fd_);
    }
    int fd() const noexcept { return fd_; }  // -1: no fd to spare

private:
    int fd_;
    EventLoop* loop_;
};

Coro<int> wait_for_exit(std::shared_ptr<ProcessState> s) {
    std::optional<ForeignPidfd> foreign;
    while (!s->try_reap()) {
        if (!foreign && running_loop() != s->loop) foreign.emplace(s->pidfd);
        if (foreign && foreign->fd() < 0) {
            // Out of fds: the wait asks again every few milliseconds instead of failing.
            auto pause = sleep(kReapRetryDelay);
            co_await std::move(pause);
            continue;
        }
        IoAwaiter io;
        io.op.kind = IoOperation::Kind::PollIn;
        io.op.fd = foreign ? foreign->fd() : s->pidfd;
        co_await io;
    }
    co_return *s->returncode();
}

Coro<std::string> read_all(StreamReader r) { co_return co_await r.read(-1); }

Coro<> feed(StreamWriter w, std::string input) {
    std::exception_ptr broken;
    try {
        if (!input.empty()) {
            w.write(input);
            co_await w.drain();
        }
    } catch (const std::system_error& e) {
        // The child may exit without reading its input (asyncio ignores BrokenPipe here too).
        if (e.code().value() != EPIPE && e.code().value() != ECONNRESET) broken = std::current_exception();
    }
    w.close();
    if (broken) std::rethrow_exception(broken);
}

}  // namespace
}  // namespace detail

int Process::pid() const noexcept { return s_ ? s_->pid : -1; }
std::optional<int> Process::returncode() const noexcept {
    if (!s_) return std::nullopt;
    s_->try_reap();
    return s_->returncode();
}

detail::ProcessState& Process::state() const {
    if (!s_) throw std::logic_error("corio: this Process is empty (default-constructed or moved from)");
    return *s_;
}

StreamWriter& Process::in() { return state().in; }
StreamReader& Process::out() { return state().out; }
StreamReader& Process::err() { return state().err; }

Coro<int> Process::wait() {
    (void)state();
    return detail::wait_for_exit(s_);
}

Coro<std::pair<std::string, std::string>> Process::communicate(std::string input) {
    (void)state();  // throws at the call for an empty Process, not when awaited
    return communicate_with(s_, std::move(input));
}

Coro<std::pair<std::string, std::string>> Process::communicate_with(std::shared_ptr<detail::ProcessState> s,
                                                                     std::string input) {
    Task<> feeding;
    Task<std::string> out, err;
    if (s->in && !s->in.is_closing()) feeding = create_task(detail::feed(s->in, std::move(input)));
    if (s->out) out = create_task(detail::read_all(s->out));
    if (s->err) err = create_task(detail::read_all(s->err));
    std::pair<std::string, std::string> result;
    std::exception_ptr failure;
    try {
        if (feeding) co_await feeding;
        if (out) result.first = co_await out;
        if (err) result.second = co_await err;
        co_await detail::wait_for_exit(s);
    } catch (...) {
        failure = std::current_exception();
    }
    if (failure) {
        // Cancelled (a timeout, say) or failed: none of the helpers may outlive the call.
        std::vector<detail::FutureBase*> helpers;
        for (AnyTask* t : std::initializer_list<AnyTask*>{&feeding, &out, &err})
            if (*t && !t->done()) {
                t->cancel();
                helpers.push_back(t->state());
            }
        if (!helpers.empty()) co_await detail::wait_all_absorbing(helpers);
        for (AnyTask* t : std::initializer_list<AnyTask*>{&feeding, &out, &err})
            if (*t) t->state()->mark_retrieved();
        std::rethrow_exception(failure);
    }
    co_return result;
}

void Process::send_signal(int sig) {
    if (!s_) return;  // no child at all
    detail::ProcessState& s = *s_;
    // Through the pidfd: a pid reaped behind our back may already name another process.
    if (s.returncode()) throw ProcessLookupError();
    if (detail::pidfd_send_signal(s.pidfd, sig) < 0) {
        if (errno == ESRCH) throw ProcessLookupError();
        throw std::system_error(errno, std::generic_category(), "pidfd_send_signal");
    }
}
void Process::terminate() { send_signal(SIGTERM); }
void Process::kill() { send_signal(SIGKILL); }

Coro<Process> create_subprocess_exec(std::vector<std::string> argv, SubprocessOptions options) {
    return detail::spawn_process(std::move(argv), std::move(options));
}

Coro<Process> create_subprocess_shell(std::string command, SubprocessOptions options) {
    std::vector<std::string> argv{"/bin/sh", "-c", std::move(command)};
    return detail::spawn_process(std::move(argv), std::move(options));
}

}  // namespace corio
