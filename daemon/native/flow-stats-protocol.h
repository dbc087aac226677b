/* The commands qe-flowstat reads on its stdin (qe-flowstat.c describes them). Their one other copy
 * is daemon/src/flows/native-stats.ts, which test/flow-stats.test.ts holds to this header. */
#ifndef QE_FLOW_STATS_PROTOCOL_H
#define QE_FLOW_STATS_PROTOCOL_H

#define QE_FS_TABLE "table" /* table <iface> <partial 0|1> <catalog size> <pcap path> */
#define QE_FS_PLAN "plan"   /* answer the tables given since the last plan */
#define QE_FS_BODY "body"   /* body <iface> <length>, then that many bytes of flow records */
#define QE_FS_END "end"     /* count, print the answer, exit */

#endif
