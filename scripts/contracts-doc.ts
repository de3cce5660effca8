// Prints the event-contract tables for the README (generated so the docs cannot drift;
// __tests__/contracts checks the README holds exactly this text).
import { contractsMarkdown } from '../contracts/markdown';

process.stdout.write(`${contractsMarkdown()}\n`);
