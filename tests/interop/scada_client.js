// A SCADA-like client on an independent OPC UA stack (node-opcua): browse the building, read a
// tag with its EURange and units, write a setpoint in range and one out of range, read history.
// Usage: node scada_client.js <endpoint> <campus> <building> [<policy> <mode> <user>]; prints one JSON
// object. With a policy (e.g. Basic256Sha256 SignAndEncrypt) the client uses its own certificate
// (node-opcua creates one in <pki folder>, env TWINBRIDGE_NODE_PKI) and logs in as <user> with the
// password in env TWINBRIDGE_OPCUA_PASSWORD.
const { OPCUAClient, AttributeIds, DataType, StatusCodes, MessageSecurityMode, SecurityPolicy, UserTokenType } = require("node-opcua-client");

async function main() {
  const [endpoint, campus, building, policy = "None", mode = "None", user] = process.argv.slice(2);
  const options = {
    endpointMustExist: false,
    securityMode: MessageSecurityMode[mode],
    securityPolicy: SecurityPolicy[policy],
    connectionStrategy: { maxRetry: 2, initialDelay: 200, maxDelay: 1000 },
    requestedSessionTimeout: 60000,
  };
  if (policy !== "None") {
    const { OPCUACertificateManager } = require("node-opcua-certificate-manager");
    options.clientCertificateManager = new OPCUACertificateManager({
      rootFolder: process.env.TWINBRIDGE_NODE_PKI, automaticallyAcceptUnknownCertificate: true,
    });
  }
  const client = OPCUAClient.create(options);
  await client.connect(endpoint);
  const session = await client.createSession(
    user ? { type: UserTokenType.UserName, userName: user, password: process.env.TWINBRIDGE_OPCUA_PASSWORD } : undefined);
  try {
    const ns = (await session.readNamespaceArray()).indexOf("urn:twinbridge");
    const id = (path) => `ns=${ns};s=${campus}.${building}.${path}`;
    const folders = await session.browse(`ns=${ns};s=${campus}.${building}`);
    const inputs = await session.browse(id("Inputs"));
    const range = await session.read({ nodeId: id("Inputs.CoolingSetpoint.EURange"), attributeId: AttributeIds.Value });
    const units = await session.read({ nodeId: id("Inputs.CoolingSetpoint.EngineeringUnits"), attributeId: AttributeIds.Value });
    const power = await session.read({ nodeId: id("Outputs.FacilityPower"), attributeId: AttributeIds.Value });
    const write = (value) => session.write({
      nodeId: id("Inputs.CoolingSetpoint"), attributeId: AttributeIds.Value,
      value: { value: { dataType: DataType.Double, value } },
    });
    const inRange = await write(26.5);
    const outOfRange = await write(99.0);
    const after = await session.read({ nodeId: id("Inputs.CoolingSetpoint"), attributeId: AttributeIds.Value });
    const history = await session.readHistoryValue(id("Outputs.FacilityPower"), new Date(Date.UTC(2000, 0, 1)), new Date(Date.UTC(2100, 0, 1)));
    console.log(JSON.stringify({
      folders: folders.references.map((r) => r.browseName.name).sort(),
      inputs: inputs.references.map((r) => r.browseName.name).sort(),
      euRange: [range.value.value.low, range.value.value.high],
      units: units.value.value.displayName.text,
      powerType: DataType[power.value.dataType],
      powerTime: power.sourceTimestamp && power.sourceTimestamp.toISOString(),
      writeInRange: inRange.name,
      writeOutOfRange: outOfRange.name,
      setpointAfter: after.value.value,
      historyStatus: history.statusCode.name,
      historyValues: history.historyData ? history.historyData.dataValues.length : 0,
      securityMode: MessageSecurityMode[client.securityMode],
    }));
  } finally {
    await session.close();
    await client.disconnect();
  }
}

main().catch((error) => { console.error(error); process.exit(1); });
