/* `qe-extract --plan`: the read plan of every file of a filtered extraction from its index
 * (index-plan.h says what goes in and what comes out; read-plan.c how). */
#ifndef QE_READ_PLAN_H
#define QE_READ_PLAN_H

/* qe-extract's main when its first argument is --plan: returns the exit status. */
int qe_read_plan_main(int argc, char **argv);

#endif
