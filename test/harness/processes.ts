export { freePort, waitForPort, startDaemon, stopChild, type Daemon } from '../../common/daemons.ts';
