// corio: Python's asyncio, in C++20. This header brings everything.
#pragma once

#include "corio/clock.hpp"
#include "corio/coro.hpp"
#include "corio/debug.hpp"
#include "corio/errors.hpp"
#include "corio/executor.hpp"
#include "corio/future.hpp"
#include "corio/loop.hpp"
#include "corio/runners.hpp"
#include "corio/sleep.hpp"
#include "corio/task.hpp"
#include "corio/contextlib.hpp"
#include "corio/gather.hpp"
#include "corio/generator.hpp"
#include "corio/taskgroup.hpp"
#include "corio/timeouts.hpp"
#include "corio/wait.hpp"
