export { Connectors } from './registry.ts';
export { SimulatorConnector, type SimulatorConnectorOptions } from './simulator.ts';
export {
  type AcquirerRefund,
  type AcquirerTransaction,
  type AuthorizeRequest,
  type CardForAcquirer,
  type Connector,
  ConnectorError,
  type Inquiry,
} from './types.ts';
