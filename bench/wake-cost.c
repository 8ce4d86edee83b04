/*
 * The CPU time one timed wake-up costs on this machine, outside any scheduler: a thread
 * sleeps to 2,000 deadlines 1 ms apart (clock_nanosleep, absolute) and reports its own
 * CPU time (kernel included) per wake-up, and how late it woke on average.
 *
 * A scheduler that starts jobs spread 1 ms apart must wake once per job, so at 1,000
 * jobs per second it cannot use less than 1,000 times this, before doing any work.
 *
 *   gcc -O2 -o /tmp/wake-cost bench/wake-cost.c && /tmp/wake-cost
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <time.h>

static long long ns(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(void) {
    const int wakeups = 2000;
    const long period_ns = 1000000;
    struct timespec deadline;
    long long late_ns = 0;
    long long cpu0 = ns(CLOCK_THREAD_CPUTIME_ID);
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    for (int i = 0; i < wakeups; i++) {
        deadline.tv_nsec += period_ns;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_nsec -= 1000000000;
            deadline.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL);
        late_ns += ns(CLOCK_MONOTONIC) - (deadline.tv_sec * 1000000000LL + deadline.tv_nsec);
    }
    long long cpu1 = ns(CLOCK_THREAD_CPUTIME_ID);
    double per_wake_us = (cpu1 - cpu0) / 1e3 / wakeups;
    printf("CPU per timed wake-up: %.1f us (%.2f%% of a core at 1,000 wake-ups/s); "
           "mean lateness %.1f us\n",
           per_wake_us, per_wake_us / 10.0, late_ns / 1e3 / wakeups);
    return 0;
}
